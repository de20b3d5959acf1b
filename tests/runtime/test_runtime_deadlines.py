"""A request's deadline bounds every detector call, inline or prefetched, and the decision of a Check
that passes it is the error policy's, recorded with a deadline_exceeded error."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from server_helpers import config

from benchmarks.long_text_bench import RULESETS, licence_text, request_data, shipped
from detectors.base import DeadlineExceeded, DetectorResult, run_by
from detectors.specs import DetectorSettings
from dsl.compiler import compile_source
from dsl.types import Outcome, Stage
from engine.audit import AuditPaths
from engine.audit.store import Store
from engine.guard import Guard
from engine.runtime.decision import Decision
from engine.runtime.detector_cache import CachedScan, DetectorCache
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import request_from_dict

UNCACHED = DetectorSettings(cache_bytes=0)  # every call does its work: no result from an earlier test
DEADLINE_S = 0.1  # a 100,000-character text's classifier call takes several times this


# The stages of coding_agent and rag_assistant whose rules call one expensive detector (the classifier
# on `content`): it runs inline, not prefetched
SINGLE_HEAVY = [
    ("coding_agent", Stage.INPUT),
    ("coding_agent", Stage.TOOL_RESULT),
    ("rag_assistant", Stage.INPUT),
    ("rag_assistant", Stage.RETRIEVAL),
    ("rag_assistant", Stage.TOOL_RESULT),
]


@pytest.fixture(scope="module")
def evaluators() -> dict[str, Evaluator]:
    return shipped(UNCACHED)


@pytest.mark.parametrize(("ruleset", "stage"), SINGLE_HEAVY, ids=[f"{n}-{s.value}" for n, s in SINGLE_HEAVY])
def test_a_single_heavy_detector_is_held_to_the_deadline(
    evaluators: dict[str, Evaluator], ruleset: str, stage: Stage
) -> None:
    evaluator = evaluators[ruleset]
    text = licence_text(100_000)
    decision = evaluator.evaluate(request_from_dict(request_data(stage, text)), timeout_s=DEADLINE_S)
    assert decision.outcome is evaluator.graph.on_error.outcome is Outcome.BLOCK
    assert "deadline_exceeded" in [e.code for e in decision.errors]
    heavy = [r for r in decision.detectors if r.kind == "classifier"]
    assert all(r.error for r in heavy)  # stopped, or never started: not run to the end


def test_an_evaluation_that_ends_past_its_deadline_is_the_error_policys() -> None:
    source = """ruleset t version "1" {
  on error escalate to "ops" within 5m "too slow"
  rule slow on input { when content == "never" then block }
}"""
    evaluator = Evaluator(compile_source(source), UNCACHED)
    decision = evaluator.evaluate(request_from_dict({"stage": "input", "text": "x"}), timeout_s=0)
    assert decision.outcome is Outcome.ESCALATE  # never ALLOW with no error
    assert [(e.code, e.rule) for e in decision.errors] == [("deadline_exceeded", "(evaluator)")]
    (match,) = decision.matches
    assert match.from_error and match.reason == "too slow"


# CPU: a detector stops at the deadline instead of running its text to the end

PHONES = """ruleset t version "1" {
  detector phones = pii(entities: [PHONE_NUMBER])
  rule r on input { when phones(content).found then block }
}"""
TWO_HEAVY = """ruleset t version "1" {
  detector inj = classifier(model: "prompt-injection")
  detector phones = pii(entities: [PHONE_NUMBER])
  rule r on input { when inj(content).found or phones(content).found then block }
}"""


def _digits(chars: int) -> str:
    """Digits, spaces and dashes: a phone-number candidate every few characters."""
    return "".join(random.Random(7).choices("0123456789 -", k=chars))


def _cpu_s(evaluator: Evaluator, text: str, timeout_s: float | None) -> tuple[Decision, float]:
    """The decision, and the process CPU time spent on it until the detector pool has no work left."""
    started = time.process_time()
    decision = evaluator.evaluate(request_from_dict({"stage": "input", "text": text}), timeout_s=timeout_s)
    if evaluator.pool is not None:
        evaluator.pool.submit(time.sleep, 0).result()  # queued behind
        evaluator.pool.shutdown(wait=True)  # joins the calls still running
    return decision, time.process_time() - started


def test_an_inline_detector_stops_at_the_deadline_cpu() -> None:
    text = _digits(300_000)
    unbounded = Evaluator(compile_source(PHONES), UNCACHED)
    decision, without = _cpu_s(unbounded, text, None)
    assert decision.errors == ()
    deadline_s = 0.1
    decision, within = _cpu_s(Evaluator(compile_source(PHONES), UNCACHED), text, deadline_s)
    assert [e.code for e in decision.errors] == ["deadline_exceeded"]
    assert decision.outcome is Outcome.BLOCK
    assert within < deadline_s * 3 + 0.5 < without


CLASSIFIER = """ruleset t version "1" {
  detector inj = classifier(model: "prompt-injection")
  rule r on input { when inj(content).found then block }
}"""


def test_the_classifier_stops_at_the_deadline_cpu_even_while_tokenizing() -> None:
    evaluator = Evaluator(compile_source(CLASSIFIER), UNCACHED)
    evaluator.evaluate(request_from_dict({"stage": "input", "text": "warm up"}), timeout_s=None)
    deadline_s = 0.1
    decision, cpu_s = _cpu_s(evaluator, _digits(1_000_000), deadline_s)  # tokenizing alone: seconds
    assert [e.code for e in decision.errors] == ["deadline_exceeded"]
    assert decision.outcome is Outcome.BLOCK
    assert cpu_s < deadline_s * 3 + 0.5


class _Recording:
    """A detector that records how each of its calls ended: "returned", or the exception's name."""

    def __init__(self, detector: Any, ends: list[str]) -> None:
        self.detector, self.ends = detector, ends

    def detect(self, text: str) -> DetectorResult:
        try:
            result: DetectorResult = self.detector.detect(text)
        except Exception as exc:
            self.ends.append(type(exc).__name__)
            raise
        self.ends.append("returned")
        return result


def test_prefetched_detectors_stop_at_the_deadline() -> None:
    pool = ThreadPoolExecutor(2, thread_name_prefix="test-prefetch")
    evaluator = Evaluator(compile_source(TWO_HEAVY), UNCACHED, pool)
    ends: list[str] = []
    evaluator.detector_runs = {
        node: dataclasses.replace(run, detector=_Recording(run.detector, ends))
        for node, run in evaluator.detector_runs.items()
    }
    deadline_s = 0.1
    decision, cpu_s = _cpu_s(evaluator, _digits(300_000), deadline_s)
    assert decision.outcome is Outcome.BLOCK
    assert "deadline_exceeded" in [e.code for e in decision.errors]
    # both calls were prefetched and started; neither ran on once the Check was decided
    assert sorted(ends) == ["DeadlineExceeded", "DeadlineExceeded"]
    assert cpu_s < deadline_s * 3 + 1.0


# Guard: the recorded decision says what happened


def test_a_checks_record_carries_the_missed_deadline(tmp_path: Path) -> None:
    cfg = config(rulesets=str(RULESETS), data_dir=str(tmp_path), detector_cache_mb=0)
    request = request_from_dict(request_data(Stage.INPUT, licence_text(100_000)))
    with Guard.open(cfg) as guard:
        checked = guard.check("coding_agent", request, timeout_s=DEADLINE_S)
    assert checked.decision.outcome is Outcome.BLOCK
    store = Store.open_reader(AuditPaths.of(tmp_path).database)
    try:
        stored = store.find(checked.decision_id)
    finally:
        store.close()
    assert stored is not None
    body: dict[str, Any] = json.loads(stored.body)
    assert body["outcome"] == "block"
    assert "deadline_exceeded" in [e["code"] for e in body["errors"]]


def test_the_cache_scans_no_more_messages_once_the_deadline_has_passed() -> None:
    scanned: list[str] = []

    def detect(text: str) -> DetectorResult:
        scanned.append(text)
        return DetectorResult()

    scan = CachedScan(detect, "test", DetectorCache(1 << 20))
    with pytest.raises(DeadlineExceeded):
        run_by(time.perf_counter() - 1, scan.parts, ["first", "second", "third"], "parts")
    assert scanned == []
