"""Long benign texts get a decision on their content from every shipped ruleset; superlinear regexes
on crafted long texts still time out and go to the error policy."""

from __future__ import annotations

import pytest

from benchmarks.long_text_bench import RULESETS, licence_text, request_data, shipped, stages
from detectors.specs import DetectorSettings
from dsl.compiler import compile_source
from dsl.types import Outcome, Stage
from engine.runtime.evaluator import Evaluator
from engine.runtime.registry import compile_rulesets
from engine.runtime.request import request_from_dict

SIZES = (300_000, 999_000)  # the lengths, within max_text_chars (1,000,000)
CASES = [
    (name, stage) for (name, _), graph in compile_rulesets(str(RULESETS)).items() for stage in stages(graph)
]


@pytest.fixture(scope="module")
def evaluators() -> dict[str, Evaluator]:
    return shipped(DetectorSettings())


@pytest.fixture(scope="module", params=SIZES, ids=lambda size: f"{size}chars")
def text(request: pytest.FixtureRequest) -> str:
    return licence_text(request.param)


@pytest.mark.parametrize(("ruleset", "stage"), CASES, ids=[f"{n}-{s.value}" for n, s in CASES])
def test_a_long_licence_text_gets_a_decision_on_its_content(
    evaluators: dict[str, Evaluator], ruleset: str, stage: Stage, text: str
) -> None:
    decision = evaluators[ruleset].evaluate(request_from_dict(request_data(stage, text)))
    assert decision.errors == ()


def test_a_finding_at_the_end_of_a_long_text_decides(evaluators: dict[str, Evaluator]) -> None:
    tail = " Card: 4111 1111 1111 1111."
    text = licence_text(999_000 - len(tail)) + tail
    decision = evaluators["support_bot"].evaluate(request_from_dict(request_data(Stage.INPUT, text)))
    assert decision.errors == ()
    assert decision.outcome is Outcome.BLOCK
    assert "payment_and_identity_numbers" in [m.rule for m in decision.matches]


def test_a_long_one_line_answer_that_names_curl_often_is_decided_on_its_content(
    evaluators: dict[str, Evaluator],
) -> None:
    text = "see curl https://example.com/a.tar.gz for the archive; " * 4000  # 220,000 chars, one line
    decision = evaluators["coding_agent"].evaluate(request_from_dict(request_data(Stage.OUTPUT, text)))
    assert decision.errors == ()  # the TLS rule's curl ... -k scan is bounded to a command's length
    assert decision.outcome is Outcome.ALLOW


SUPERLINEAR = """\
ruleset t version "1" {
  on error block
  rule exponential on input { when content matches "(a+)+$" then allow "no" }
  rule quadratic on output {
    when content matches "\\\\bcurl\\\\b[^\\\\n]*\\\\s--insecure\\\\b" then allow "no" }
}
"""


@pytest.mark.parametrize(
    ("stage", "text"),
    [(Stage.INPUT, "a" * 299_999 + "!"), (Stage.OUTPUT, ("--insecure " + "curl -k " * 40_000)[:300_000])],
    ids=["exponential", "quadratic"],
)
def test_a_superlinear_regex_on_a_long_crafted_text_still_times_out(stage: Stage, text: str) -> None:
    evaluator = Evaluator(compile_source(SUPERLINEAR), DetectorSettings(regex_timeout_s=0.005))
    decision = evaluator.evaluate(request_from_dict({"stage": stage.value, "text": text}))
    assert decision.outcome is Outcome.BLOCK
    (error,) = decision.errors
    assert error.code == "regex_timeout"
    assert "timed out after 0.03s" in error.message  # 5 ms for each 50,000 characters
