"""`escalate ... else allow reusable`: what an unanswered approval means, and whether it holds for one use."""

from __future__ import annotations

import pytest

from dsl import render
from dsl.compiler import compile_source
from dsl.diagnostics import CompileError
from dsl.ir import ActionNode


def _source(options: str) -> str:
    arm = f'when content == "x" then escalate to "q" within 1s {options}'
    return f'ruleset t version "1" {{ rule r on input {{ {arm} }} }}'


def _action(options: str) -> ActionNode:
    return compile_source(_source(options)).rules[0].arms[0].action


@pytest.mark.parametrize(
    ("options", "on_expiry", "reusable"),
    [
        ('"why"', "", False),
        ('else block "why"', "", False),
        ('else allow "why"', "allow", False),
        ('reusable "why"', "", True),
        ("else allow reusable", "allow", True),
    ],
)
def test_escalate_options_compile(options: str, on_expiry: str, reusable: bool) -> None:
    action = _action(options)
    assert (action.on_expiry, action.reusable) == (on_expiry, reusable)


def test_the_defaults_leave_the_canonical_form_as_it_was() -> None:
    assert "on_expiry" not in _action('"why"').canonical()
    assert {"on_expiry": "allow", "reusable": True}.items() <= _action(
        "else allow reusable"
    ).canonical().items()


def test_the_options_are_rendered() -> None:
    graph = compile_source(_source("else allow reusable"))
    assert 'escalate to "q" within 1s else allow reusable' in render.to_text(graph)


def test_options_in_the_wrong_order_do_not_parse() -> None:
    with pytest.raises(CompileError):
        _action("reusable else allow")
