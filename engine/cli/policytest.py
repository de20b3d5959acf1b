"""Policy tests: cases written beside each ruleset (NAME.tests.toml), run like `opa test`."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from detectors.specs import DetectorSettings
from dsl.compiler import compile_file
from dsl.types import Outcome
from engine.runtime.decision import Decision
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import RequestError, request_from_dict

TEST_SUFFIX = ".tests.toml"
# A fixed pseudonym key, so that a test can spell out what `fallback pseudonymize` writes.
TEST_SETTINGS = DetectorSettings(pseudonym_key=b"palisade-policy-tests")
_EXPECTATION_KEYS = ("name", "expect", "rules", "redacted", "reasons", "reply", "model", "queue")


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    line: int
    name: str
    passed: bool
    detail: str = ""

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        tail = f": {self.detail}" if self.detail else ""
        return f"{self.file}:{self.line}: {verdict} {self.name!r}{tail}"


def test_files(*paths: str) -> Iterator[str]:
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(TEST_SUFFIX))
        elif path.endswith(TEST_SUFFIX):
            yield path
        elif os.path.exists(path.removesuffix(".pal") + TEST_SUFFIX):
            yield path.removesuffix(".pal") + TEST_SUFFIX


def run_file(path: str) -> list[CaseResult]:
    """Run every case in one test file against the ruleset of the same name beside it."""
    ruleset = path.removesuffix(TEST_SUFFIX) + ".pal"
    with open(path, "rb") as handle:
        try:
            cases = tomllib.load(handle).get("test", [])
        except tomllib.TOMLDecodeError as exc:
            return [CaseResult(path, 1, "<file>", False, f"invalid TOML: {exc}")]
    with open(path, encoding="utf-8") as handle:
        lines = [n for n, text in enumerate(handle, 1) if re.match(r"\s*\[\[test\]\]", text)]
    evaluator = Evaluator(compile_file(ruleset), TEST_SETTINGS)
    return [
        run_case(evaluator, case, path, lines[i] if i < len(lines) else 1) for i, case in enumerate(cases)
    ]


def run_case(evaluator: Evaluator, case: dict[str, Any], file: str, line: int) -> CaseResult:
    name = str(case.get("name", f"case at line {line}"))
    try:
        expected = Outcome[str(case["expect"]).upper()]
        request = request_from_dict({k: v for k, v in case.items() if k not in _EXPECTATION_KEYS})
    except KeyError:
        detail = "`expect` must be one of allow, block, fallback, escalate"
        return CaseResult(file, line, name, False, detail)
    except RequestError as exc:
        return CaseResult(file, line, name, False, f"invalid request: {exc}")
    decision = evaluator.evaluate(request)
    problem = _compare(case, expected, decision)
    return CaseResult(file, line, name, problem is None, problem or "")


def _compare(case: dict[str, Any], expected: Outcome, decision: Decision) -> str | None:
    got_rules = sorted(m.rule for m in decision.deciding)
    got = f"{decision.outcome.label} by {got_rules or 'the default'}"
    if decision.errors:
        got += f" (errors: {'; '.join(e.message for e in decision.errors)})"
    if decision.outcome is not expected:
        return f"expected {expected.label}, got {got}"
    if "rules" in case and sorted(case["rules"]) != got_rules:
        return f"expected {expected.label} by {sorted(case['rules'])}, got {got}"
    if "redacted" in case and case["redacted"] != decision.redacted:
        return f"expected redacted text {case['redacted']!r}, got {decision.redacted!r}"
    if "reasons" in case and sorted(case["reasons"]) != sorted(decision.reasons):
        return f"expected reasons {sorted(case['reasons'])}, got {sorted(decision.reasons)}"
    return _compare_action(case, decision)


def _compare_action(case: dict[str, Any], decision: Decision) -> str | None:
    """`reply`, `model` and `queue` check the details of the action the caller would apply."""
    action = decision.action
    details = {
        "reply": action.fallback_value if action and action.fallback == "reply" else None,
        "model": action.fallback_value if action and action.fallback == "model" else None,
        "queue": action.queue if action and action.queue else None,
    }
    for key, got in details.items():
        if key in case and case[key] != got:
            return f"expected {key} {case[key]!r}, got {got!r}"
    return None
