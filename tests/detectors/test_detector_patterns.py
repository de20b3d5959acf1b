"""Tests for the regex and keywords detectors."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from detectors.base import DetectorError, DetectorResult
from detectors.patterns import KeywordsDetector, RegexDetector
from detectors.specs import SPECS, DetectorSettings, KeywordsParams, RegexParams
from detectors.textscan import MAX_FINDINGS, run_timed

SETTINGS = DetectorSettings()


def regex_scan(text: str, **params: object) -> DetectorResult:
    return RegexDetector(RegexParams.model_validate(params), SETTINGS).detect(text)


def keywords_scan(text: str, **params: object) -> DetectorResult:
    return KeywordsDetector(KeywordsParams.model_validate(params), SETTINGS).detect(text)


def spans(text: str, result: DetectorResult) -> list[str]:
    return [text[f.start : f.end] for f in result.findings]


def test_regex_offsets_are_character_offsets_after_non_ascii_text() -> None:
    text = "héllo wörld 🙂 ünïcode, order 12345 then 678"
    result = regex_scan(text, pattern=r"\d+", type="ORDER_ID")
    assert spans(text, result) == ["12345", "678"]
    first = result.findings[0]
    assert (first.start, first.end) == (text.index("12345"), text.index("12345") + 5)
    assert first.type == "ORDER_ID"
    assert first.score == 1.0


def test_regex_findings_never_carry_the_matched_text() -> None:
    result = regex_scan("ssn 123-45-6789", pattern=r"\d{3}-\d{2}-\d{4}")
    (finding,) = result.findings
    assert finding.detail == ""
    assert "123-45-6789" not in repr(finding)
    assert "123-45-6789" not in repr(result)


def test_regex_default_type_and_no_match() -> None:
    assert regex_scan("abc", pattern="b").types == frozenset({"REGEX"})
    assert not regex_scan("abc", pattern="z").found


def test_regex_ignore_case() -> None:
    text = "Project ACME and project acme"
    assert spans(text, regex_scan(text, pattern="acme")) == ["acme"]
    assert spans(text, regex_scan(text, pattern="acme", ignore_case=True)) == ["ACME", "acme"]


def test_regex_allow_list_is_exact_and_case_sensitive_by_default() -> None:
    text = "mail bob@example.com, noreply@example.com, NOREPLY@example.com"
    result = regex_scan(text, pattern=r"\S+@example\.com", allow=["noreply@example.com"])
    assert spans(text, result) == ["bob@example.com", "NOREPLY@example.com"]


def test_regex_allow_list_ignores_case_when_ignore_case() -> None:
    text = "mail bob@example.com, NOREPLY@example.com"
    result = regex_scan(text, pattern=r"\S+@example\.com", ignore_case=True, allow=["noreply@EXAMPLE.com"])
    assert spans(text, result) == ["bob@example.com"]


def test_regex_empty_matches_are_not_findings() -> None:
    assert not regex_scan("abc", pattern="x*").found


def test_regex_findings_are_capped() -> None:
    result = regex_scan("a" * (MAX_FINDINGS + 500), pattern="a")
    assert len(result.findings) == MAX_FINDINGS


def test_regex_catastrophic_backtracking_raises_detector_error() -> None:
    detector = RegexDetector(RegexParams(pattern=r"(a+)+$"), DetectorSettings(regex_timeout_s=0.001))
    with pytest.raises(DetectorError, match="timed out"):
        detector.detect("a" * 5000 + "!")


def test_regex_params_reject_an_invalid_pattern() -> None:
    with pytest.raises(ValidationError, match="invalid regular expression"):
        RegexParams(pattern="(unclosed")


def test_keywords_whole_word_and_ignore_case_by_default() -> None:
    text = "Classic CLASS, subclass; class."
    assert spans(text, keywords_scan(text, words=["class"])) == ["CLASS", "class"]


def test_keywords_substrings_when_not_whole_word() -> None:
    text = "Classic CLASS, subclass"
    result = keywords_scan(text, words=["class"], whole_word=False, ignore_case=False)
    assert spans(text, result) == ["class"]
    assert [(f.start, f.end) for f in result.findings] == [(text.index("subclass") + 3, 23)]


def test_keywords_respect_case_when_asked() -> None:
    text = "DROP TABLE users; drop table logs"
    result = keywords_scan(text, words=["drop table"], ignore_case=False)
    assert spans(text, result) == ["drop table"]


def test_keywords_prefer_the_longest_phrase() -> None:
    text = "flights to new york city"
    result = keywords_scan(text, words=["new", "new york", "york"], type="PLACE")
    assert spans(text, result) == ["new york"]
    assert result.types == frozenset({"PLACE"})


def test_keywords_are_literal_and_whole_word_works_around_symbols() -> None:
    text = "I write c++ and a.b, not abc++ or c++x or axb"
    assert spans(text, keywords_scan(text, words=["c++", "a.b"])) == ["c++", "a.b"]


def test_keywords_offsets_after_non_ascii_text() -> None:
    text = "日本語のテキスト then Secret Project"
    (finding,) = keywords_scan(text, words=["secret project"]).findings
    assert finding.start == text.index("Secret")
    assert text[finding.start : finding.end] == "Secret Project"
    assert finding.detail == ""


def test_keywords_unicode_whole_word() -> None:
    text = "café cafés"
    assert spans(text, keywords_scan(text, words=["café"])) == ["café"]


def test_keywords_allow_list() -> None:
    text = "Jailbreak, JAILBREAK and jailbreaking"
    result = keywords_scan(text, words=["jailbreak"], allow=["JAILBREAK"])
    assert not result.found
    result = keywords_scan(text, words=["jailbreak"], ignore_case=False, allow=["JAILBREAK"])
    assert not result.found
    result = keywords_scan(text, words=["jailbreak", "Jailbreak"], ignore_case=False, allow=["JAILBREAK"])
    assert spans(text, result) == ["Jailbreak"]


def test_keywords_params_reject_blank_words() -> None:
    with pytest.raises(ValidationError):
        KeywordsParams(words=["ok", "  "])


@pytest.mark.parametrize(
    ("name", "params", "text", "expected"),
    [
        ("regex", RegexParams(pattern=r"\d+"), "id 42", ["42"]),
        ("keywords", KeywordsParams(words=["forbidden"]), "a Forbidden word", ["Forbidden"]),
    ],
)
def test_specs_load_these_implementations(name: str, params: object, text: str, expected: list[str]) -> None:
    detector = SPECS[name].load()(params, SETTINGS)
    assert spans(text, detector.detect(text)) == expected


def test_run_timed_holds_the_gil_briefly_on_short_text_then_releases_it() -> None:
    calls: list[tuple[bool, float]] = []

    def quick(concurrent: bool, timeout_s: float) -> str:
        calls.append((concurrent, timeout_s))
        return "found"

    def slow(concurrent: bool, timeout_s: float) -> str:
        calls.append((concurrent, timeout_s))
        if not concurrent:
            raise TimeoutError
        return "found late"

    assert run_timed(quick, "short", 0.05) == "found"
    assert run_timed(quick, "x" * 5000, 0.05) == "found"  # a long text releases it at once
    assert run_timed(slow, "short", 0.05) == "found late"
    assert calls == [(False, 0.001), (True, 0.05), (False, 0.001), (True, pytest.approx(0.049))]


def test_a_catastrophic_search_on_short_text_lets_other_threads_run() -> None:
    detector = RegexDetector(RegexParams(pattern=r"(a+)+$"), DetectorSettings(regex_timeout_s=0.3))
    stop = threading.Event()
    spins = 0

    def spin() -> None:  # pure Python: it runs only while the search has let go of the GIL
        nonlocal spins
        while not stop.is_set():
            spins += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        before = spins
        with pytest.raises(DetectorError, match="timed out"):
            detector.detect("a" * 4000 + "!")  # short enough to be searched holding the GIL first
        during = spins - before
    finally:
        stop.set()
        spinner.join()
    # measured: about 6 million spins while the search lets go, about 100 thousand if it held the GIL
    assert during > 1_000_000
