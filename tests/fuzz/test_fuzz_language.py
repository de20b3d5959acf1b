"""Fuzzing the language: any source compiles or is explained; a compiled ruleset decides any request."""

from __future__ import annotations

import json

import pytest
from fuzz_helpers import fuzz_settings, fuzz_timeout
from hypothesis import assume, given, note
from hypothesis import strategies as st
from language_fuzz import (
    Mutation,
    assert_compiles_or_explains,
    compile_text,
    library,
    mutate,
    mutation,
    requests,
    rulesets,
)

from engine.protocol.response_codec import response_from_decision
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import Request

pytestmark = pytest.mark.timeout(fuzz_timeout())
# What a decision may report as an error: a detector that failed or was late, a regex that timed out.
# "internal_error" (the evaluator caught an exception of its own) is a bug.
EXPECTED_ERRORS = {"detector_error", "deadline_exceeded", "regex_timeout"}


@fuzz_settings()
@given(rulesets(), st.one_of(st.none(), library))
def test_generated_rulesets_compile_or_explain(text: str, lib: str | None) -> None:
    assert_compiles_or_explains(compile_text(text, lib))


@fuzz_settings(share=0.2)
@given(library)
def test_a_library_compiled_alone_is_checked(text: str) -> None:
    c = compile_text(text)
    assert_compiles_or_explains(c)
    assert c.graph is None


@fuzz_settings()
@given(rulesets(), st.lists(mutation, min_size=1, max_size=4), st.one_of(st.none(), library))
def test_mutated_rulesets_compile_or_explain(text: str, mutations: list[Mutation], lib: str | None) -> None:
    mutated = mutate(text, mutations)
    note(f"to keep it, write this to tests/fuzz/corpus/NAME.pal: {mutated!r}")
    assert_compiles_or_explains(compile_text(mutated, lib))


@fuzz_settings(share=0.5)
@given(rulesets(runnable=True), st.lists(requests, min_size=1, max_size=3))
def test_compiled_rulesets_decide_any_request(text: str, batch: list[Request]) -> None:
    c = compile_text(text)
    assume(c.ok)
    assert c.graph is not None
    evaluator = Evaluator(c.graph)
    for request in batch:
        assert_decides(evaluator, request)


def assert_decides(evaluator: Evaluator, request: Request) -> None:
    """A decision with no internal error, which the CLI's JSON and the gRPC response can carry."""
    decision = evaluator.evaluate(request)
    assert {e.code for e in decision.errors} <= EXPECTED_ERRORS, decision.errors
    json.dumps(decision.summary())
    response = response_from_decision(
        decision, default=evaluator.graph.default, decision_id="d", request_id="r", now_s=0.0, server_us=0.0
    )
    assert response.SerializeToString()
