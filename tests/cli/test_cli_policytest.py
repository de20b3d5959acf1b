"""Policy tests (NAME.tests.toml beside NAME.pal): passing, failing with file:line, bad cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.diagnostics import CompileError
from engine.cli import policytest

RULESET = """\
ruleset bot version "1.0.0" {
  detector keys = secrets()
  rule no_ssn on input {
    when content matches "\\\\d{3}-\\\\d{2}-\\\\d{4}" then block "SSNs are not allowed here"
  }
  rule leaked on output { when keys(content).found then fallback redact keys }
  rule risky on tool_call {
    when tool.name == "shell.exec" and not ("admin" in principal.roles) then escalate to "sre" within 30m
  }
}
"""

TESTS = """\
[[test]]
name = "an SSN is blocked"
stage = "input"
text = "my ssn is 123-45-6789"
expect = "block"
rules = ["no_ssn"]
reasons = ["SSNs are not allowed here"]

[[test]]
name = "keys are redacted"
stage = "output"
messages = [{ role = "assistant", content = "use AKIAABCDEFGHIJKLMNOP" }]
expect = "fallback"
redacted = "use <AWS_ACCESS_KEY>"

[[test]]
name = "a non-admin shell escalates"
stage = "tool_call"
tool = { name = "shell.exec", arguments = { command = "ls" } }
principal = { id = "u1", roles = ["dev"] }
expect = "escalate"
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "bot.pal").write_text(RULESET)
    (tmp_path / "bot.tests.toml").write_text(TESTS)
    return tmp_path


def test_passing_cases(suite: Path) -> None:
    results = policytest.run_file(str(suite / "bot.tests.toml"))
    assert [r.passed for r in results] == [True, True, True]
    assert [r.line for r in results] == [1, 9, 16]
    assert [r.name for r in results] == [
        "an SSN is blocked",
        "keys are redacted",
        "a non-admin shell escalates",
    ]
    assert str(results[0]).endswith(": PASS 'an SSN is blocked'")


def failing(suite: Path, case: str) -> policytest.CaseResult:
    (suite / "bot.tests.toml").write_text(TESTS + "\n" + case)
    results = policytest.run_file(str(suite / "bot.tests.toml"))
    assert [r.passed for r in results[:3]] == [True, True, True]
    (result,) = results[3:]
    assert not result.passed
    return result


def test_a_wrong_outcome_fails_with_file_and_line(suite: Path) -> None:
    result = failing(suite, '[[test]]\nname = "wrong"\nstage = "input"\ntext = "hello"\nexpect = "block"\n')
    assert result.line == 23
    assert result.detail == "expected block, got allow by the default"
    assert (
        str(result)
        == f"{suite / 'bot.tests.toml'}:23: FAIL 'wrong': expected block, got allow by the default"
    )


def test_wrong_rules_fail(suite: Path) -> None:
    result = failing(
        suite,
        '[[test]]\nname = "rules"\nstage = "input"\ntext = "123-45-6789"\nexpect = "block"\n'
        'rules = ["other"]\n',
    )
    assert result.detail == "expected block by ['other'], got block by ['no_ssn']"


def test_wrong_redaction_fails(suite: Path) -> None:
    result = failing(
        suite,
        '[[test]]\nname = "r"\nstage = "output"\ntext = "AKIAABCDEFGHIJKLMNOP"\nexpect = "fallback"\n'
        'redacted = "x"\n',
    )
    assert "expected redacted text 'x', got '<AWS_ACCESS_KEY>'" in result.detail


def test_wrong_reasons_fail(suite: Path) -> None:
    result = failing(
        suite,
        '[[test]]\nname = "r"\nstage = "input"\ntext = "123-45-6789"\nexpect = "block"\nreasons = ["nope"]\n',
    )
    assert result.detail.startswith("expected reasons ['nope']")


def test_an_invalid_request_fails_and_names_the_field(suite: Path) -> None:
    result = failing(suite, '[[test]]\nname = "bad stage"\nstage = "inptu"\nexpect = "allow"\n')
    assert result.detail.startswith("invalid request: stage:")
    result = failing(suite, '[[test]]\nname = "extra"\nstage = "input"\ncolour = "red"\nexpect = "allow"\n')
    assert "colour" in result.detail


def test_a_bad_expectation_fails(suite: Path) -> None:
    result = failing(suite, '[[test]]\nname = "no expect"\nstage = "input"\n')
    assert "`expect` must be one of" in result.detail
    result = failing(suite, '[[test]]\nname = "odd"\nstage = "input"\nexpect = "deny"\n')
    assert "`expect` must be one of" in result.detail


def test_a_name_is_made_up_when_missing(suite: Path) -> None:
    (suite / "bot.tests.toml").write_text('[[test]]\nstage = "input"\nexpect = "allow"\n')
    (result,) = policytest.run_file(str(suite / "bot.tests.toml"))
    assert result.passed and result.name == "case at line 1"


def test_invalid_toml(suite: Path) -> None:
    (suite / "bot.tests.toml").write_text("[[test]\nname = ")
    (result,) = policytest.run_file(str(suite / "bot.tests.toml"))
    assert not result.passed and result.detail.startswith("invalid TOML")


def test_a_ruleset_that_does_not_compile(suite: Path) -> None:
    (suite / "bot.pal").write_text('ruleset bot version "1" { rule r on input { when nope then block } }')
    with pytest.raises(CompileError):
        policytest.run_file(str(suite / "bot.tests.toml"))


def test_finding_test_files(suite: Path) -> None:
    (suite / "sub").mkdir()
    (suite / "sub" / "other.tests.toml").write_text("")
    (suite / "alone.pal").write_text("")
    found = list(policytest.test_files(str(suite)))
    assert found == [str(suite / "bot.tests.toml"), str(suite / "sub" / "other.tests.toml")]
    # a ruleset path finds the tests beside it; one without tests finds nothing
    assert list(policytest.test_files(str(suite / "bot.pal"))) == [str(suite / "bot.tests.toml")]
    assert list(policytest.test_files(str(suite / "alone.pal"))) == []


def test_action_details_are_checked(suite: Path) -> None:
    (suite / "bot.tests.toml").write_text(
        TESTS.replace('expect = "escalate"', 'expect = "escalate"\nqueue = "secops"')
    )
    results = policytest.run_file(str(suite / "bot.tests.toml"))
    assert [r.passed for r in results] == [True, True, False]
    assert "expected queue 'secops', got 'sre'" in results[2].detail
