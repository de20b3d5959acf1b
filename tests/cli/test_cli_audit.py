"""`palisade audit ...`: each command on a real log, its output and its exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_helpers import database, decide, make_log, open_log, request

from engine.audit import AuditPaths
from engine.cli.main import main
from engine.runtime.ids import new_id


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["audit", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """Six decisions: two blocked (alice), two refunds (bob, another ruleset version nowhere), two allowed."""
    with open_log(tmp_path, checkpoint_every_records=4) as log:
        for text, who in [("SSN 123-45-6789", "alice"), ("a refund please", "bob"), ("hello", "carol")] * 2:
            decision, req = decide(request(text, principal={"id": who}))
            log.append(decision, req, new_id())
    return tmp_path


def test_verify_passes_on_a_whole_log(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "verify", "--data-dir", str(data_dir))
    assert status == 0
    assert "audit log whole: 6 record(s)" in out


def test_verify_names_the_first_broken_record(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with database(data_dir) as conn:
        decision_id = conn.execute("SELECT decision_id FROM records WHERE seq = 3").fetchone()[0]
        conn.execute("UPDATE records SET body = replace(body, 'carol', 'mallory') WHERE seq = 3")
    status, _, err = _run(capsys, "verify", "--data-dir", str(data_dir))
    assert status == 1
    assert f"BROKEN at record 3 (decision {decision_id}): edited:" in err


def test_verify_with_a_copy_and_a_public_key_file(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    auditor = tmp_path_factory.mktemp("auditor")
    status, pem, _ = _run(capsys, "pubkey", "--data-dir", str(data_dir))
    assert status == 0 and pem == AuditPaths.of(data_dir).public_key.read_text()
    (auditor / "key.pem").write_text(pem)
    (auditor / "log.db").write_bytes(AuditPaths.of(data_dir).database.read_bytes())
    status, out, _ = _run(
        capsys, "verify", "--db", str(auditor / "log.db"), "--public-key", str(auditor / "key.pem")
    )
    assert status == 0 and "whole" in out


def test_show_prints_one_record(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "export", "--data-dir", str(data_dir))
    decision_id = str(_lines(out)[1]["decision_id"])
    status, out, _ = _run(capsys, "show", "--data-dir", str(data_dir), decision_id)
    assert status == 0 and json.loads(out)["decision_id"] == decision_id
    status, _, err = _run(capsys, "show", "--data-dir", str(data_dir), "nope")
    assert status == 1 and "no record with decision id nope" in err


@pytest.mark.parametrize(
    ("flags", "seqs"),
    [
        (["--outcome", "block"], [1, 4]),
        (["--rule", "refunds"], [2, 5]),
        (["--principal", "carol"], [3, 6]),
        (["--ruleset", "audit_test", "--limit", "2"], [1, 2]),
        (["--ruleset", "other"], []),
        (["--since", "2000-01-01T00:00:00Z", "--until", "2999-01-01"], [1, 2, 3, 4, 5, 6]),
        (["--until", "2000-01-01T00:00:00+02:00"], []),
    ],
)
def test_query_selects_records(
    data_dir: Path, capsys: pytest.CaptureFixture[str], flags: list[str], seqs: list[int]
) -> None:
    status, out, _ = _run(capsys, "query", "--data-dir", str(data_dir), *flags)
    assert status == 0 and [line["seq"] for line in _lines(out)] == seqs


def test_query_refuses_a_bad_time(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, "query", "--data-dir", str(data_dir), "--since", "last tuesday")
    assert status == 2 and "not an ISO 8601 time" in err


def test_tail_and_export(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "tail", "--data-dir", str(data_dir), "-n", "2")
    assert [line["seq"] for line in _lines(out)] == [5, 6]
    _, out, _ = _run(capsys, "export", "--data-dir", str(data_dir), "--after-seq", "4")
    assert [line["seq"] for line in _lines(out)] == [5, 6]
    with database(data_dir) as conn:
        assert out.splitlines()[0] == conn.execute("SELECT body FROM records WHERE seq = 5").fetchone()[0]


def test_prove_and_verify_proof(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "export", "--data-dir", str(data_dir))
    decision_id = str(_lines(out)[4]["decision_id"])
    status, proof, _ = _run(capsys, "prove", "--data-dir", str(data_dir), decision_id)
    assert status == 0
    (tmp_path / "proof.json").write_text(proof)
    public_key = str(AuditPaths.of(data_dir).public_key)
    status, out, _ = _run(capsys, "verify-proof", str(tmp_path / "proof.json"), "--public-key", public_key)
    assert status == 0 and f"decision {decision_id} is record 5" in out
    (tmp_path / "proof.json").write_text(proof.replace('"outcome": "fallback"', '"outcome": "allow"'))
    status, _, err = _run(capsys, "verify-proof", str(tmp_path / "proof.json"), "--public-key", public_key)
    assert status == 1 and "proof INVALID: the record's contents do not match its hash" in err


def test_prune(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_log(tmp_path, 25, checkpoint_every_records=10)
    status, out, _ = _run(capsys, "prune", "--data-dir", str(tmp_path), "--max-records", "10")
    assert status == 0 and "pruned 10 record(s); the log now starts after record 10" in out
    assert _run(capsys, "verify", "--data-dir", str(tmp_path))[0] == 0
    status, _, err = _run(capsys, "prune", "--data-dir", str(tmp_path))
    assert status == 2 and "--max-age-days or --max-records" in err


def test_commands_on_a_missing_log_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, "show", "--data-dir", str(tmp_path), "x")
    assert status == 2 and "no audit log at" in err
    status, _, err = _run(capsys, "pubkey", "--data-dir", str(tmp_path))
    assert status == 1 and "no audit signing key" in err
    status, _, err = _run(capsys, "verify", "--data-dir", str(tmp_path))
    assert status == 2 and "no audit log at" in err
    make_log(tmp_path, 1)
    status, _, err = _run(
        capsys, "verify", "--data-dir", str(tmp_path), "--public-key", str(tmp_path / "nope")
    )
    assert status == 2 and "nope: cannot read" in err


def test_verify_names_a_rule_index_that_hides_a_record_from_query(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with database(data_dir) as conn:
        conn.execute("DELETE FROM record_rules WHERE seq = 5")
    _, out, _ = _run(capsys, "query", "--data-dir", str(data_dir), "--rule", "refunds")
    assert [line["seq"] for line in _lines(out)] == [2]  # the query trusts the index: verify must not
    status, _, err = _run(capsys, "verify", "--data-dir", str(data_dir))
    assert status == 1 and "BROKEN at record 5" in err and "the rule index lists no rule" in err
