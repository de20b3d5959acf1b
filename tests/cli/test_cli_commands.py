"""The `palisade` command line: check, test, graph and eval, with their output and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from engine.cli.main import main

GOOD = """\
ruleset bot version "1.0.0" {
  detector keys = secrets()
  rule leaked on output { when keys(content).found then fallback redact keys }
  rule banned on input { when "forbidden" in content then block "forbidden word" }
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
    assert data["matches"] == [{"rule": "banned", "arm": 0, "outcome": "block", "reason": "forbidden word"}]


@pytest.mark.parametrize(
    "request_text", ["{not json", '{"stage": "nowhere"}', '{"stage": "input", "extra": 1}']
)
def test_eval_invalid_request(tmp_path: Path, capsys: pytest.CaptureFixture[str], request_text: str) -> None:
    assert main(["eval", write(tmp_path, "bot.pal", GOOD), request_text]) == 2
    assert "invalid request" in capsys.readouterr().err


def test_eval_broken_ruleset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", write(tmp_path, "bad.pal", BAD), '{"stage": "input"}']) == 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["check", "--format", "xml", "x.pal"])
    assert info.value.code == 2
