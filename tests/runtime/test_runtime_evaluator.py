"""The evaluator: deadlines and detector failures under the error policy, laziness, memoising,
redaction, and the decision it returns."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from detectors.base import DetectorError, DetectorResult, Finding
from detectors.specs import SPECS, CostClass, DetectorSettings, DetectorSpec, Params
from dsl.compiler import compile_source
from dsl.types import Outcome
from engine.runtime.decision import Decision
from engine.runtime.evaluator import Evaluator, redact
from engine.runtime.request import request_from_dict

CATASTROPHIC_INPUT = "a" * 2000 + "!"
TINY_TIMEOUT = DetectorSettings(regex_timeout_s=0.0001)


def evaluate(
    source: str, settings: DetectorSettings | None = None, timeout_s: float | None = None, **request: Any
) -> Decision:
    evaluator = Evaluator(compile_source(source), settings)
    return evaluator.evaluate(request_from_dict(request), timeout_s=timeout_s)


# Test-only detector kinds: a detector that reports a failure and one with a bug. They go through
# the same spec registry as the real detectors, so the compiler and the evaluator treat them alike.


class FailingParams(Params):
    message: str = "model unavailable"


class FailingDetector:
    def __init__(self, params: FailingParams, settings: DetectorSettings) -> None:
        self.message = params.message

    def detect(self, text: str) -> DetectorResult:
        raise DetectorError(self.message)


class BuggyDetector:
    def __init__(self, params: FailingParams, settings: DetectorSettings) -> None:
        pass

    def detect(self, text: str) -> DetectorResult:
        raise ZeroDivisionError("a bug")


@pytest.fixture
def failing_kinds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, implementation in (("failing", "FailingDetector"), ("buggy", "BuggyDetector")):
        spec = DetectorSpec(
            name=name,
            summary="test only",
            params=FailingParams,
            cost=CostClass.CHEAP,
            cost_us=1,
            implementation=f"{__name__}:{implementation}",
            finding_types=lambda p: frozenset({"X"}),
        )
        monkeypatch.setitem(SPECS, name, spec)
    yield


# deadlines


DEADLINE = """\
ruleset t version "1" {
  detector kw = keywords(words: ["x"])
  rule scan on input { when kw(content).found then allow "scanned" }
  rule plain on input { when content == "plain" then escalate to "q" within 1m }
}
"""


def test_a_missed_deadline_applies_the_error_policy() -> None:
    decision = evaluate(DEADLINE, timeout_s=0, stage="input", text="x")
    assert decision.outcome is Outcome.BLOCK  # fail closed
    (error,) = decision.errors
    assert error.code == "deadline_exceeded"
    assert error.rule == "scan"
    (match,) = decision.matches
    assert match.rule == "scan" and match.from_error and match.arm == -1
    assert match.reason == "a detector failed (fail closed)"


def test_a_missed_deadline_under_a_lenient_policy() -> None:
    source = DEADLINE.replace("{\n  detector", "{\n  on error allow\n  detector", 1)
    decision = evaluate(source, timeout_s=0, stage="input", text="x")
    assert decision.outcome is Outcome.ALLOW and decision.default_applied
    assert [(e.code, e.rule) for e in decision.errors] == [("deadline_exceeded", "scan")]
    # once the escalation matched, the detector rule can no longer change the outcome: skipped
    decision = evaluate(source, timeout_s=0, stage="input", text="plain")
    assert decision.outcome is Outcome.ESCALATE
    assert [m.rule for m in decision.matches] == ["plain"]
    assert decision.skipped_rules == ("scan",)
    # it still ended past its deadline: recorded, and the (lenient) error policy applied
    assert [(e.code, e.rule) for e in decision.errors] == [("deadline_exceeded", "(evaluator)")]


def test_no_deadline_problem_with_time_to_spare() -> None:
    decision = evaluate(DEADLINE, timeout_s=60, stage="input", text="x")
    assert decision.outcome is Outcome.ALLOW
    assert decision.errors == ()


def test_rules_without_detectors_ignore_the_deadline() -> None:
    decision = evaluate(DEADLINE, timeout_s=0, stage="input", text="plain")
    assert decision.outcome is Outcome.BLOCK  # the detector rule still fails closed
    assert sorted(m.rule for m in decision.matches) == ["plain", "scan"]


# detector failures


def test_a_regex_detector_timeout_is_an_error_not_a_clean_result() -> None:
    source = (
        'ruleset t version "1" {\n detector slow = regex(pattern: "(a+)+$")\n'
        " rule r on input { when slow(content).found then allow } }"
    )
    decision = evaluate(source, TINY_TIMEOUT, stage="input", text=CATASTROPHIC_INPUT)
    assert decision.outcome is Outcome.BLOCK
    (error,) = decision.errors
    assert error.code == "detector_error" and "timed out" in error.message
    (report,) = decision.detectors
    assert report.error and report.findings == ()


def test_a_detector_error_applies_the_rules_policy(failing_kinds: None) -> None:
    source = """ruleset t version "1" {
  on error escalate to "ops" within 5m "detector down"
  detector f = failing(message: "model unavailable")
  rule strict on input { when f(content).found then allow }
  rule lenient on output { on error allow
    when f(content).found then block }
}"""
    decision = evaluate(source, stage="input", text="x")
    assert decision.outcome is Outcome.ESCALATE
    assert decision.reasons == ("detector down",)
    assert decision.action is not None and decision.action.queue == "ops"
    (error,) = decision.errors
    assert (error.code, error.rule) == ("detector_error", "strict")
    assert "model unavailable" in error.message
    decision = evaluate(source, stage="output", text="x")
    assert decision.outcome is Outcome.ALLOW and decision.default_applied
    assert [e.rule for e in decision.errors] == ["lenient"]


def test_a_detector_bug_is_contained(failing_kinds: None) -> None:
    source = 'ruleset t version "1" {\n detector b = buggy()\n rule r on input {'
    source += " when b(content).found then allow } }"
    decision = evaluate(source, stage="input", text="x")
    assert decision.outcome is Outcome.BLOCK
    (error,) = decision.errors
    assert error.code == "detector_error" and "ZeroDivisionError" in error.message


def test_a_failed_detector_fails_once_per_request(failing_kinds: None) -> None:
    source = """ruleset t version "1" {
  detector f = failing()
  rule a on input { when f(content).found then allow }
  rule b on input { when f(content).count > 2 then allow }
}"""
    decision = evaluate(source, stage="input", text="x")
    assert len(decision.detectors) == 1  # memoised, failure included
    assert sorted(e.rule for e in decision.errors) == ["a", "b"]
    assert decision.outcome is Outcome.BLOCK


def test_a_failing_redaction_detector_applies_the_error_policy(failing_kinds: None) -> None:
    source = """ruleset t version "1" {
  detector f = failing()
  rule r on output { when content == "x" then fallback redact f }
}"""
    decision = evaluate(source, stage="output", text="x")
    assert decision.outcome is Outcome.BLOCK  # never the unredacted content
    assert decision.redacted is None
    assert [e.code for e in decision.errors] == ["detector_error"]


def test_a_failing_default_redaction_applies_the_rulesets_policy(failing_kinds: None) -> None:
    source = """ruleset t version "1" {
  default fallback redact f
  on error block "cannot redact"
  detector f = failing()
  rule ok on output { when content == "fine" then allow }
}"""
    decision = evaluate(source, stage="output", text="x")
    assert decision.outcome is Outcome.BLOCK
    assert decision.redacted is None
    assert decision.reasons == ("cannot redact",)
    assert [m.from_error for m in decision.matches] == [True]
    assert [e.code for e in decision.errors] == ["detector_error"]


# laziness


LAZY = """\
ruleset t version "1" {
  detector keys = secrets()
  detector kw = keywords(words: ["hello"])
  rule banned on input { when principal.id == "mallory" then block "banned" }
  rule leaked on input { when keys(content).found then block "secret" }
  rule greeting on input { when kw(content).found then allow "hi" }
}
"""


def test_detectors_that_cannot_change_a_block_do_not_run() -> None:
    decision = evaluate(LAZY, stage="input", text="hello AKIAABCDEFGHIJKLMNOP", principal={"id": "mallory"})
    assert decision.outcome is Outcome.BLOCK
    assert [m.rule for m in decision.matches] == ["banned"]
    assert decision.detectors == ()
    assert sorted(decision.skipped_rules) == ["greeting", "leaked"]


def test_without_a_block_every_detector_runs() -> None:
    decision = evaluate(LAZY, stage="input", text="hello AKIAABCDEFGHIJKLMNOP", principal={"id": "alice"})
    assert decision.outcome is Outcome.BLOCK
    assert sorted(m.rule for m in decision.matches) == ["greeting", "leaked"]
    assert sorted(r.kind for r in decision.detectors) == ["keywords", "secrets"]
    assert decision.skipped_rules == ()


def test_a_rule_whose_detector_already_ran_is_not_skipped() -> None:
    source = """ruleset t version "1" {
  detector keys = secrets()
  rule first on input { when keys(content).found then block "first" }
  rule second on input { when keys(content).count >= 1 then block "second" }
}"""
    decision = evaluate(source, stage="input", text="AKIAABCDEFGHIJKLMNOP")
    assert sorted(m.rule for m in decision.deciding) == ["first", "second"]
    assert decision.skipped_rules == ()
    assert len(decision.detectors) == 1


def test_rules_of_other_stages_do_not_run() -> None:
    source = """ruleset t version "1" {
  detector keys = secrets()
  rule out on output { when keys(content).found then block }
}"""
    decision = evaluate(source, stage="input", text="AKIAABCDEFGHIJKLMNOP")
    assert decision.outcome is Outcome.ALLOW
    assert decision.detectors == () and decision.skipped_rules == ()


def test_short_circuit_skips_an_unneeded_detector() -> None:
    source = """ruleset t version "1" {
  detector keys = secrets()
  rule r on input { when stage == "output" and keys(content).found then block }
}"""
    decision = evaluate(source, stage="input", text="AKIAABCDEFGHIJKLMNOP")
    assert decision.outcome is Outcome.ALLOW
    assert decision.detectors == ()


def test_a_detector_on_a_quantifier_variable_scans_each_item() -> None:
    source = """ruleset t version "1" {
  detector kw = keywords(words: ["jailbreak"])
  rule r on input { when any(m in messages: kw(m.content).found) then block }
}"""
    messages = [{"role": "user", "content": text} for text in ("hi", "hello", "a jailbreak", "hi")]
    decision = evaluate(source, stage="input", messages=messages)
    assert decision.outcome is Outcome.BLOCK
    # one run per distinct text up to the first match ("hi" twice is scanned once)
    assert len(decision.detectors) == 3
    assert [len(r.findings) for r in decision.detectors] == [0, 0, 1]
    decision = evaluate(source, stage="input", messages=messages[:2])
    assert decision.outcome is Outcome.ALLOW


# the decision


def test_decision_fields() -> None:
    graph = compile_source(LAZY)
    decision = Evaluator(graph).evaluate(
        request_from_dict({"stage": "input", "text": "hello", "request_id": "r1"})
    )
    assert (decision.ruleset, decision.version, decision.content_hash) == ("t", "1", graph.content_hash)
    assert decision.outcome is Outcome.ALLOW and not decision.default_applied
    assert decision.reasons == ("hi",)
    assert decision.duration_us >= 0
    assert set(decision.timings_us) == {r.node for r in decision.detectors}
    (report,) = [r for r in decision.detectors if r.kind == "keywords"]
    assert [(f.type, f.start, f.end) for f in report.findings] == [("KEYWORD", 0, 5)]
    summary = decision.summary()
    assert summary["outcome"] == "allow"
    assert summary["matches"] == [{"rule": "greeting", "arm": 0, "outcome": "allow", "reason": "hi"}]
    assert {"detector", "type", "start", "end", "score"} <= set(summary["findings"][0])


def test_the_default_decision_carries_the_default_action() -> None:
    source = (
        'ruleset t version "1" {\n default escalate to "triage" within 10m "unreviewed"\n'
        ' rule r on input { when content == "ok" then allow } }'
    )
    decision = evaluate(source, stage="input", text="other")
    assert decision.outcome is Outcome.ESCALATE and decision.default_applied
    assert decision.matches == ()
    assert decision.action is not None
    assert (decision.action.queue, decision.action.within_us) == ("triage", 600_000_000)


def test_the_evaluator_is_reusable_and_thread_safe() -> None:
    requests = [
        request_from_dict({"stage": "input", "text": text, "principal": {"id": who}})
        for text, who in [("hello", "a"), ("AKIAABCDEFGHIJKLMNOP", "b"), ("x", "mallory"), ("nothing", "c")]
    ]
    with ThreadPoolExecutor(4) as detector_pool, ThreadPoolExecutor(8) as callers:
        evaluator = Evaluator(compile_source(LAZY), pool=detector_pool)
        expected = [evaluator.evaluate(r).outcome for r in requests]
        assert expected == [Outcome.ALLOW, Outcome.BLOCK, Outcome.BLOCK, Outcome.ALLOW]
        results = list(callers.map(lambda r: evaluator.evaluate(r).outcome, requests * 25))
    assert results == expected * 25


# redaction


def finding(kind: str, start: int, end: int) -> Finding:
    return Finding(kind, start, end)


def test_redact_replaces_spans_with_types() -> None:
    text = "call 555-1234 or mail a@b.c"
    assert redact(text, [finding("PHONE", 5, 13), finding("EMAIL", 22, 27)]) == "call <PHONE> or mail <EMAIL>"


def test_redact_merges_overlaps_into_the_first_finding() -> None:
    text = "0123456789"
    assert redact(text, [finding("B", 3, 8), finding("A", 1, 5)]) == "0<A>89"
    assert redact(text, [finding("A", 1, 9), finding("B", 2, 4)]) == "0<A>9"


def test_redact_keeps_adjacent_findings_apart() -> None:
    assert redact("abcdef", [finding("X", 0, 3), finding("Y", 3, 6)]) == "<X><Y>"


def test_redact_ignores_spans_outside_the_text() -> None:
    assert redact("abc", [finding("X", 2, 10), finding("Y", -1, 1), finding("Z", 1, 1)]) == "abc"
    assert redact("abc", []) == "abc"
