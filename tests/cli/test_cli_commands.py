"""The `palisade` command line: check, test, graph and eval, with their output and exit codes."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.client.guard_client import CheckResult

RULESETS = str(Path(__file__).resolve().parents[2] / "rulesets")

GOOD = """\
ruleset bot version "1.0.0" {
  detector keys = secrets()
  rule leaked on output { when keys(content).found then fallback redact keys }
  rule banned on input { when "forbidden" in content then block "forbidden word" }
  rule greeting on input { when "hello" in content then fallback reply "Hi! What can I do?" "a greeting" }
}
"""
BAD = """\
ruleset bot version "1.0.0" {
  rule one on input { when contnet == "x" then block }
  rule two on inptu { when content == 5 then block }
}
"""
WARNS = 'ruleset w version "1" {\n  rule r on input, tool_call { when tool.name == "x" then block }\n}\n'
TESTS = """\
[[test]]
name = "forbidden is blocked"
stage = "input"
text = "a forbidden word"
expect = "block"
rules = ["banned"]
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# check


def test_check_a_good_ruleset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", write(tmp_path, "good.pal", GOOD)]) == 0
    err = capsys.readouterr().err
    assert "checked 1 file(s): 0 error(s), 0 warning(s)" in err


def test_check_prints_every_error_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.pal", BAD)
    assert main(["check", path]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2:28: error[P200]: unknown name `contnet`" in err
    assert f"{path}:3:15: error[P205]: unknown stage `inptu`" in err
    assert f"{path}:3:36: error[P300]" in err
    assert '   2 |   rule one on input { when contnet == "x" then block }' in err
    assert "^^^^^^^" in err
    assert "hint: did you mean `content`?" in err
    assert "checked 1 file(s): 3 error(s), 0 warning(s)" in err


def test_check_warnings_do_not_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", write(tmp_path, "w.pal", WARNS)]) == 0
    err = capsys.readouterr().err
    assert "warning[W500]" in err
    assert "0 error(s), 1 warning(s)" in err


def test_check_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "good.pal", GOOD)
    write(tmp_path, "bad.pal", BAD)
    assert main(["check", str(tmp_path)]) == 1
    assert "checked 2 file(s): 3 error(s)" in capsys.readouterr().err


def test_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.pal", BAD)
    assert main(["check", "--format", "json", path]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [(d["code"], d["span"]["line"], d["span"]["column"]) for d in data] == [
        ("P200", 2, 28),
        ("P205", 3, 15),
        ("P300", 3, 36),
    ]
    assert all(d["severity"] == "error" and d["span"]["file"] == path for d in data)
    assert data[0]["hint"] == "did you mean `content`?"


def test_check_json_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "json", write(tmp_path, "good.pal", GOOD)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_check_with_no_files_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path)]) == 1
    assert "checked 0 file(s)" in capsys.readouterr().err


def test_check_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "absent.pal")]) == 1
    assert "cannot read" in capsys.readouterr().err


# test


def test_test_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "bot.pal", GOOD)
    write(tmp_path, "bot.tests.toml", TESTS)
    assert main(["test", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 passed, 0 failed" in out
    assert "PASS" not in out  # passing cases are printed with -v only
    assert main(["test", "-v", str(tmp_path)]) == 0
    assert "PASS 'forbidden is blocked'" in capsys.readouterr().out


def test_test_failure_prints_the_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "bot.pal", GOOD)
    tests = write(
        tmp_path,
        "bot.tests.toml",
        TESTS + '\n[[test]]\nname = "wrong"\nstage = "input"\ntext = "ok"\nexpect = "block"\n',
    )
    assert main(["test", str(tmp_path / "bot.pal")]) == 1
    out = capsys.readouterr().out
    assert f"{tests}:8: FAIL 'wrong': expected block, got allow by the default" in out
    assert "1 passed, 1 failed" in out


def test_test_with_a_broken_ruleset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "bot.pal", BAD)
    write(tmp_path, "bot.tests.toml", TESTS)
    assert main(["test", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "error[P200]" in captured.err
    assert "ruleset does not compile" in captured.out


def test_test_with_no_tests_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "bot.pal", GOOD)
    assert main(["test", str(tmp_path)]) == 1
    assert "0 passed, 0 failed" in capsys.readouterr().out


# graph


def test_graph_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", write(tmp_path, "bot.pal", GOOD)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ruleset bot 1.0.0  sha256:")
    assert "keys(content): secrets" in out
    assert "    banned on input" in out


def test_graph_dot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--format", "dot", write(tmp_path, "bot.pal", GOOD)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith('digraph "bot" {') and out.endswith("}")
    assert '"keys(content)" [shape=box' in out


def test_graph_of_a_broken_ruleset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", write(tmp_path, "bad.pal", BAD)]) == 1
    assert "error[P200]" in capsys.readouterr().err


def test_graph_of_a_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "lib.pal", "library l { rule r on input { when true then allow } }")
    assert main(["graph", path]) == 1
    assert "not a ruleset" in capsys.readouterr().err


# eval


def test_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bot.pal", GOOD)
    request = json.dumps({"stage": "output", "text": "key AKIAABCDEFGHIJKLMNOP"})
    assert main(["eval", path, request]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "fallback"
    assert data["redacted"] == "key <AWS_ACCESS_KEY>"
    assert [m["rule"] for m in data["matches"]] == ["leaked"]
    assert data["findings"][0]["type"] == "AWS_ACCESS_KEY"
    assert "AKIA" not in json.dumps(data["findings"])  # findings never carry the secret


def test_eval_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "bot.pal", GOOD)
    monkeypatch.setattr("sys.stdin", io.StringIO('{"stage": "input", "text": "forbidden"}'))
    assert main(["eval", path, "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "block"
    assert data["reasons"] == ["forbidden word"]
    assert [(m["rule"], m["arm"], m["deciding"]) for m in data["matches"]] == [("banned", 0, True)]


@pytest.mark.parametrize(
    "request_text", ["{not json", '{"stage": "nowhere"}', '{"stage": "input", "extra": 1}']
)
def test_eval_invalid_request(tmp_path: Path, capsys: pytest.CaptureFixture[str], request_text: str) -> None:
    assert main(["eval", write(tmp_path, "bot.pal", GOOD), request_text]) == 2
    assert "invalid request" in capsys.readouterr().err


def test_eval_broken_ruleset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", write(tmp_path, "bad.pal", BAD), '{"stage": "input"}']) == 1


def test_eval_prints_what_ask_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", write(tmp_path, "bot.pal", GOOD), '{"stage": "input", "text": "hi"}']) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == [f.name for f in dataclasses.fields(CheckResult)]
    assert data["outcome"] == "allow" and data["decision_id"] == ""  # in process: nothing is audited


def test_eval_prints_the_fallback_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", write(tmp_path, "bot.pal", GOOD), '{"stage": "input", "text": "hello"}']) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "fallback" and data["reasons"] == ["a greeting"]
    assert data["fallback"] == {"kind": "reply", "reply": "Hi! What can I do?", "model": ""}


def test_eval_by_name_prints_the_redacted_text(capsys: pytest.CaptureFixture[str]) -> None:
    request = json.dumps({"stage": "output", "text": "The SSN is 123-45-6789."})
    assert main(["eval", "--rulesets", RULESETS, "rag_assistant", request]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "fallback" and data["fallback"]["kind"] == "redact"
    assert data["reasons"] == ["SSN or card number removed from the answer"]
    assert data["redacted"] == "The SSN is <US_SSN>."
    assert [f["type"] for f in data["findings"]] == ["US_SSN"]


def test_eval_prints_the_escalation(capsys: pytest.CaptureFixture[str]) -> None:
    text = "Compare our renewal price with what other tenants pay for the same plan."
    request = json.dumps({"stage": "input", "text": text})
    assert main(["eval", "--rulesets", RULESETS, "rag_assistant", request]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "escalate"
    assert data["reasons"] == ["question asks about other tenants' data"]
    assert data["escalation"]["queue"] == "secops" and data["escalation"]["approval_id"] == ""
    assert data["escalation"]["deadline"]  # `within 15m`, from now


def test_eval_reads_the_request_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = write(tmp_path, "request.json", '{"stage": "input", "text": "a forbidden word"}')
    assert main(["eval", write(tmp_path, "bot.pal", GOOD), f"@{request}"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "block"


def test_eval_a_missing_request_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", write(tmp_path, "bot.pal", GOOD), f"@{tmp_path / 'absent.json'}"]) == 2
    assert f"invalid request: cannot read {tmp_path / 'absent.json'}" in capsys.readouterr().err


def test_ask_reads_its_request_file_before_calling_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = tmp_path / "absent.json"
    assert main(["ask", "--server", "127.0.0.1:1", "--ruleset", "bot", "--request", f"@{absent}"]) == 2
    assert f"invalid request: cannot read {absent}" in capsys.readouterr().err


def test_ask_refuses_a_request_it_cannot_send_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    request = '{"stage": "input", "text": "\\ud800"}'  # JSON for a lone surrogate
    assert main(["ask", "--server", "127.0.0.1:1", "--ruleset", "bot", "--request", request]) == 2
    assert "invalid request: text: contains a lone surrogate at index 0" in capsys.readouterr().err


# a ruleset by name


def test_graph_by_name_in_the_default_rulesets_directory(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(RULESETS).parent)
    assert main(["graph", "coding_agent"]) == 0
    assert capsys.readouterr().out.startswith("ruleset coding_agent 1.0.0  sha256:")


def test_graph_by_name_and_pinned_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--rulesets", RULESETS, "--version", "1.0.0", "rag_assistant"]) == 0
    assert capsys.readouterr().out.startswith("ruleset rag_assistant 1.0.0  sha256:")
    assert main(["graph", "--rulesets", RULESETS, "--version", "9", "rag_assistant"]) == 2
    err = capsys.readouterr().err
    assert "no ruleset 'rag_assistant' version '9'" in err and "rag_assistant@1.0.0" in err


def test_an_unknown_name_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--rulesets", RULESETS, "support", '{"stage": "input"}']) == 2
    err = capsys.readouterr().err
    assert f"{RULESETS}: no ruleset 'support'" in err
    assert "(loaded: coding_agent, rag_assistant, support_bot)" in err


def test_a_name_without_a_rulesets_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--rulesets", str(tmp_path / "none"), "bot"]) == 2
    assert f"no file 'bot', and no '{tmp_path / 'none'}'" in capsys.readouterr().err


def test_a_name_in_a_directory_with_a_broken_ruleset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "good.pal", GOOD)
    write(tmp_path, "bad.pal", BAD)
    assert main(["graph", "--rulesets", str(tmp_path), "bot"]) == 1
    err = capsys.readouterr().err
    assert "error[P200]" in err and f"{tmp_path}: 3 error(s) in the rulesets" in err


def test_version_applies_to_a_name_not_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bot.pal", GOOD)
    assert main(["eval", "--version", "1.0.0", path, '{"stage": "input"}']) == 2
    assert f"--version pins a ruleset given by name; {path} is a file" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["check", "--format", "xml", "x.pal"])
    assert info.value.code == 2
