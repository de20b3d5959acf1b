"""The request's deadline as detectors see it (detectors.base.run_by): a regex search runs no longer
than the time left, and a detector long at work stops at its next step once it has passed."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from detectors.base import DEADLINE, DeadlineExceeded, Detector, DetectorError, check_deadline, run_by
from detectors.classifier import ClassifierDetector
from detectors.patterns import RegexDetector
from detectors.pii import PiiDetector
from detectors.secrets import SecretsDetector
from detectors.specs import ClassifierParams, DetectorSettings, PiiParams, RegexParams, SecretsParams

DIGITS = "".join(random.Random(5).choices("0123456789 -", k=20_000))  # phone-number candidates galore
CATASTROPHIC = "1" + "a" * 60 + "!"  # its "1" lets the literal screen through; then it backtracks
PROSE = "The forklifts arrive on Monday; call 415-555-0132 about the racks. " * 300


def _passed() -> float:
    return time.perf_counter() - 1.0


def test_no_deadline_outside_run_by() -> None:
    assert DEADLINE.get() is None
    check_deadline()  # nothing to raise


def test_run_by_sets_the_deadline_for_its_call_only() -> None:
    deadline = time.perf_counter() + 60

    def inner() -> float | None:
        assert run_by(None, DEADLINE.get) is None  # nested: its own, then the outer one again
        return DEADLINE.get()

    assert run_by(deadline, inner) == deadline
    assert DEADLINE.get() is None
    with pytest.raises(DeadlineExceeded):
        run_by(_passed(), check_deadline)
    assert DEADLINE.get() is None  # restored after an exception too


def test_each_pool_thread_sees_the_deadline_it_was_given() -> None:
    deadline = time.perf_counter() + 60
    with ThreadPoolExecutor(2) as pool:
        assert pool.submit(run_by, deadline, DEADLINE.get).result() == deadline
        assert pool.submit(DEADLINE.get).result() is None


def test_a_regex_search_cut_by_the_deadline_is_no_regex_timeout() -> None:
    slow = RegexDetector(RegexParams(pattern=r"(a|aa)+1"), DetectorSettings(regex_timeout_s=30.0))
    started = time.perf_counter()
    with pytest.raises(DeadlineExceeded, match="the deadline cut a regex search short"):
        run_by(started + 0.05, slow.detect, CATASTROPHIC)
    assert time.perf_counter() - started < 10  # far less than its 30 s regex timeout
    with pytest.raises(DeadlineExceeded, match="passed before a regex search"):
        run_by(_passed(), slow.detect, "aaa1")


def test_regex_timeouts_are_unchanged_where_the_deadline_is_later() -> None:
    slow = RegexDetector(RegexParams(pattern=r"(a|aa)+1"), DetectorSettings(regex_timeout_s=0.01))
    with pytest.raises(DetectorError, match=r"regex timed out after 0\.01s") as raised:
        run_by(time.perf_counter() + 60, slow.detect, CATASTROPHIC)
    assert not isinstance(raised.value, DeadlineExceeded)


@pytest.fixture(scope="module")
def detectors() -> dict[str, Detector]:
    settings = DetectorSettings()
    return {
        "classifier": ClassifierDetector(ClassifierParams(model="prompt-injection"), settings),
        "pii": PiiDetector(PiiParams(entities=["PHONE_NUMBER", "CREDIT_CARD", "EMAIL_ADDRESS"]), settings),
        "secrets": SecretsDetector(SecretsParams(), settings),
    }


@pytest.mark.parametrize("kind", ["classifier", "pii", "secrets"])
def test_a_detector_stops_once_the_deadline_has_passed(detectors: dict[str, Detector], kind: str) -> None:
    for text in (PROSE, DIGITS):
        with pytest.raises(DeadlineExceeded):
            run_by(_passed(), detectors[kind].detect, text)


@pytest.mark.parametrize("kind", ["classifier", "pii", "secrets"])
def test_with_time_to_spare_a_detector_finds_what_it_finds_without_a_deadline(
    detectors: dict[str, Detector], kind: str
) -> None:
    for text in (PROSE, DIGITS):
        assert run_by(time.perf_counter() + 600, detectors[kind].detect, text) == detectors[kind].detect(text)


def test_the_phone_matcher_stops_between_candidates(detectors: dict[str, Detector]) -> None:
    digits = DIGITS * 10  # 200,000 characters: seconds of phone-number parsing
    started = time.perf_counter()
    with pytest.raises(DeadlineExceeded):
        run_by(started + 0.05, detectors["pii"].detect, digits)
    assert time.perf_counter() - started < 1.0
