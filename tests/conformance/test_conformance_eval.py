"""Evaluation conformance: each TOML file under eval/ holds a ruleset and the decisions it must make.

File keys: ``ruleset`` (the source), optional ``file`` (the name it compiles under, relative to
``eval/``, so that imports resolve), ``regex_timeout_s`` and ``pseudonym_key`` (detector settings),
and ``[[case]]``s.

Case keys: the request (``stage``, ``text``, ``messages``, ``tool``, ``principal``, ``metadata``,
``request_id``) and the expectations:

- ``expect``: allow | block | fallback | escalate; ``rules``: exactly the deciding rules
- ``reasons``: the deciding reasons (any order); ``redacted``: the redacted text;
  ``no_redaction = true``: no redacted text at all
- ``errors``: how many errors the decision reports; ``error_codes``: their codes (any order)
- ``from_error``: whether the deciding match came from an error policy
- ``skipped``: the rules skipped as unable to change the outcome
- ``detectors_run``: the detector nodes that ran (any order); ``detector_kinds``: their kinds
  (any order; each entry is one run)
- ``action``: fields of the deciding action (``fallback``, ``fallback_value``, ``queue``, ``within_us``)
- ``timeout_s``: the deadline passed to ``evaluate``
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from pprint import pformat
from typing import Any

import pytest

from detectors.specs import DetectorSettings
from dsl.compiler import compile_source
from dsl.types import Outcome
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import request_from_dict

EVAL = Path(__file__).parent / "eval"
EXPECTATION_KEYS = frozenset(
    {
        "name",
        "expect",
        "rules",
        "reasons",
        "redacted",
        "no_redaction",
        "errors",
        "error_codes",
        "from_error",
        "skipped",
        "detectors_run",
        "detector_kinds",
        "action",
        "timeout_s",
    }
)
FILE_KEYS = frozenset({"ruleset", "file", "regex_timeout_s", "pseudonym_key", "case"})


@cache
def load(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    unknown = set(data) - FILE_KEYS
    assert not unknown, f"{path.name}: unknown keys {sorted(unknown)}"
    return data


@cache
def evaluator(path: Path) -> Evaluator:
    data = load(path)
    file = str(EVAL / data.get("file", path.with_suffix(".pal").name))
    graph = compile_source(data["ruleset"], file=file)
    settings = DetectorSettings(
        regex_timeout_s=data.get("regex_timeout_s", 0.05),
        pseudonym_key=data.get("pseudonym_key", "").encode("utf-8"),
    )
    return Evaluator(graph, settings)


def collect() -> list[Any]:
    params = []
    for path in sorted(EVAL.glob("*.toml")):
        for index, case in enumerate(load(path)["case"]):
            label = case.get("name", f"case {index + 1}")
            params.append(pytest.param(path, index, id=f"{path.stem}[{index + 1}] {label}"))
    return params


CASES = collect()


@pytest.mark.parametrize(("path", "index"), CASES)
def test_eval_case(path: Path, index: int) -> None:
    case = load(path)["case"][index]
    request = request_from_dict({k: v for k, v in case.items() if k not in EXPECTATION_KEYS})
    decision = evaluator(path).evaluate(request, timeout_s=case.get("timeout_s"))
    summary = pformat(decision.summary(), width=110)

    assert decision.outcome is Outcome[case["expect"].upper()], summary
    assert sorted(m.rule for m in decision.deciding) == sorted(case["rules"]), summary
    assert decision.default_applied == (not decision.matches), summary
    if "reasons" in case:
        assert sorted(decision.reasons) == sorted(case["reasons"]), summary
    if "redacted" in case:
        assert decision.redacted == case["redacted"], summary
    if case.get("no_redaction"):
        assert decision.redacted is None, summary
    if "errors" in case:
        assert len(decision.errors) == case["errors"], summary
    if "error_codes" in case:
        assert sorted(e.code for e in decision.errors) == sorted(case["error_codes"]), summary
    if "from_error" in case:
        assert decision.deciding, summary
        assert all(m.from_error == case["from_error"] for m in decision.deciding), summary
    if "skipped" in case:
        assert sorted(decision.skipped_rules) == sorted(case["skipped"]), summary
    if "detectors_run" in case:
        assert sorted(r.node for r in decision.detectors) == sorted(case["detectors_run"]), summary
    if "detector_kinds" in case:
        assert sorted(r.kind for r in decision.detectors) == sorted(case["detector_kinds"]), summary
    if "action" in case:
        action = decision.action
        assert action is not None, summary
        for key, value in case["action"].items():
            assert getattr(action, key) == value, f"action.{key}: {getattr(action, key)!r} != {value!r}"


def test_there_are_enough_cases() -> None:
    files = list(EVAL.glob("*.toml"))
    assert len(files) >= 45
    assert len(CASES) >= 45


def test_every_case_states_outcome_and_rules() -> None:
    for path in sorted(EVAL.glob("*.toml")):
        for case in load(path)["case"]:
            assert "expect" in case and "rules" in case, f"{path.name}: {case.get('name', case)}"
