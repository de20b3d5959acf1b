"""Checkpoints kept outside the log (saved by hand, or pushed to a witness) expose a cut or rewritten log.

Without one, whoever holds the database can cut the tail and its checkpoints and recompute the head
by the public algorithm, and the log verifies: these tests show that, and that an outside
checkpoint names it.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from pathlib import Path

import pytest
from audit_helpers import database, fill, make_log, open_log, verify, wait_until
from pydantic import ValidationError

from engine.audit import AuditConfig, AuditPaths
from engine.audit.merkle import Frontier, leaf_hash
from engine.cli.main import main

RECORDS = 200  # checkpoints at 50, 100, 150 and 200
EVERY = 50


def _audit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["audit", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def _save_checkpoint(capsys: pytest.CaptureFixture[str], data_dir: Path, to: Path) -> Path:
    status, out, _ = _audit(capsys, "checkpoint", "--data-dir", str(data_dir))
    assert status == 0
    to.write_text(out)
    return to


def _cut(data_dir: Path, keep: int) -> None:
    """What an attacker with the database can do: delete the tail and its checkpoints, recompute the head."""
    with database(data_dir) as conn:
        for table, column in (("records", "seq"), ("record_rules", "seq"), ("checkpoints", "size")):
            conn.execute(f"DELETE FROM {table} WHERE {column} > ?", (keep,))
        hashes = [row[0] for row in conn.execute("SELECT hash FROM records ORDER BY seq")]
        frontier = Frontier()
        for digest in hashes:
            frontier.append(leaf_hash(bytes.fromhex(digest)))
        (signed,) = conn.execute("SELECT max(size) FROM checkpoints").fetchone()
        conn.execute(
            "UPDATE head SET size = ?, last_hash = ?, frontier = ?, checkpoint_size = ?",
            (keep, hashes[-1], frontier.to_bytes(), signed),
        )


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    make_log(tmp_path / "data", RECORDS, checkpoint_every_records=EVERY)
    return tmp_path / "data"


def test_a_cut_tail_with_its_checkpoints_is_not_caught_by_the_log_alone(data_dir: Path) -> None:
    _cut(data_dir, 190)
    report = verify(data_dir)
    assert report.ok and report.records == 190  # documented: only an outside checkpoint shows it


def test_checkpoint_prints_the_latest_signed_checkpoint(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _audit(capsys, "checkpoint", "--data-dir", str(data_dir))
    assert status == 0
    saved = json.loads(out)
    assert set(saved) == {"statement", "signature"}
    statement = json.loads(saved["statement"])
    assert statement["size"] == RECORDS and {"log_id", "key_id", "root", "head"} <= set(statement)


def test_a_saved_checkpoint_names_a_cut_tail(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = _save_checkpoint(capsys, data_dir, tmp_path / "saved.json")
    _cut(data_dir, 190)
    assert _audit(capsys, "verify", "--data-dir", str(data_dir))[0] == 0
    status, _, err = _audit(capsys, "verify", "--data-dir", str(data_dir), "--against", str(saved))
    assert status == 1
    assert "truncated: the saved checkpoint covers 200 records but the log ends at record 190" in err


def test_a_saved_checkpoint_names_a_rewritten_log(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tail cut, then the server goes on: the log grows past the saved size, but not from it."""
    saved = _save_checkpoint(capsys, data_dir, tmp_path / "saved.json")
    _cut(data_dir, 190)
    with open_log(data_dir, checkpoint_every_records=EVERY) as log:
        fill(log, 20)
    assert _audit(capsys, "verify", "--data-dir", str(data_dir))[0] == 0
    status, _, err = _audit(capsys, "verify", "--data-dir", str(data_dir), "--against", str(saved))
    assert status == 1
    assert "rewritten: the log's first 200 records do not match the root of the saved checkpoint" in err


def test_a_whole_log_holds_every_saved_checkpoint(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = _save_checkpoint(capsys, data_dir, tmp_path / "saved.json")
    make_log(data_dir, 30, checkpoint_every_records=EVERY)
    status, out, _ = _audit(capsys, "verify", "--data-dir", str(data_dir), "--against", str(saved))
    assert status == 0
    assert "audit log whole: 230 record(s)" in out and "holds the 200 records of the saved checkpoint" in out


def test_a_saved_checkpoint_of_another_log_or_key_is_refused(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_log(tmp_path / "other", 3)
    other = _save_checkpoint(capsys, tmp_path / "other", tmp_path / "other.json")
    status, _, err = _audit(capsys, "verify", "--data-dir", str(data_dir), "--against", str(other))
    assert (
        status == 1 and "forged checkpoint: the saved checkpoint does not verify with the public key" in err
    )
    (tmp_path / "garbage.json").write_text('{"statement": 1}')
    status, _, err = _audit(
        capsys, "verify", "--data-dir", str(data_dir), "--against", str(tmp_path / "garbage.json")
    )
    assert status == 2 and "garbage.json: " in err


def _prove(capsys: pytest.CaptureFixture[str], data_dir: Path, seq: int, to: Path, *against: str) -> int:
    with database(data_dir) as conn:
        (decision_id,) = conn.execute("SELECT decision_id FROM records WHERE seq = ?", (seq,)).fetchone()
    status, out, err = _audit(capsys, "prove", "--data-dir", str(data_dir), decision_id, *against)
    to.write_text(out or err)
    return status


def _verify_proof(capsys: pytest.CaptureFixture[str], data_dir: Path, proof: Path, against: Path) -> str:
    public_key = str(AuditPaths.of(data_dir).public_key)
    argv = ("verify-proof", str(proof), "--public-key", public_key, "--against", str(against))
    status, out, err = _audit(capsys, *argv)
    return f"{status} {out}{err}"


def test_an_old_proof_of_a_cut_record_fails_against_a_later_checkpoint(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _prove(capsys, data_dir, 195, tmp_path / "proof.json") == 0
    _cut(data_dir, 190)
    witness = tmp_path / "witness"
    with open_log(data_dir, checkpoint_every_records=EVERY, witness_dir=str(witness)) as log:
        fill(log, 20)  # signs a new checkpoint at 200 (another tree) and one at 210 at close
    later = sorted(witness.iterdir())
    assert [json.loads(json.loads(p.read_text())["statement"])["size"] for p in later] == [200, 210]
    public_key = str(AuditPaths.of(data_dir).public_key)
    status, _, _ = _audit(capsys, "verify-proof", str(tmp_path / "proof.json"), "--public-key", public_key)
    assert status == 0  # alone, the old proof still holds: it carries its own (genuine) checkpoint
    same_size = _verify_proof(capsys, data_dir, tmp_path / "proof.json", later[0])
    assert same_size.startswith("1 proof INVALID: the checkpoint given signs another tree of 200 records")
    larger = _verify_proof(capsys, data_dir, tmp_path / "proof.json", later[1])
    assert larger.startswith("1 proof INVALID: the proof is for the tree of 200 records")
    assert "prove the record against it" in larger


def test_a_proof_against_a_saved_checkpoint(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = _save_checkpoint(capsys, data_dir, tmp_path / "saved.json")
    make_log(data_dir, 30, checkpoint_every_records=EVERY)  # the log goes on to 230
    assert _prove(capsys, data_dir, 150, tmp_path / "proof.json", "--against", str(saved)) == 0
    checked = _verify_proof(capsys, data_dir, tmp_path / "proof.json", saved)
    assert checked.startswith("0 proof valid:") and "signed at 200 records" in checked
    assert _prove(capsys, data_dir, 220, tmp_path / "late.json", "--against", str(saved)) == 2
    assert (
        "record 220 is not covered by the checkpoint given (200 records)"
        in (tmp_path / "late.json").read_text()
    )
    _cut(data_dir, 190)
    assert _prove(capsys, data_dir, 150, tmp_path / "cut.json", "--against", str(saved)) == 2
    assert "the log holds 190 records; the checkpoint given covers 200" in (tmp_path / "cut.json").read_text()
    older = _verify_proof(capsys, data_dir, tmp_path / "proof.json", tmp_path / "saved.json")
    assert older.startswith("0 ")


def _checkpoints(witness: Path) -> list[str]:
    return [p.read_text() for p in sorted(witness.iterdir())]


def test_a_witness_dir_gets_each_signed_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    witness = tmp_path / "witness"
    make_log(tmp_path / "data", 25, checkpoint_every_records=10, witness_dir=str(witness))
    names = sorted(p.name for p in witness.iterdir())
    with database(tmp_path / "data") as conn:
        log_id = conn.execute("SELECT value FROM meta WHERE key = 'log_id'").fetchone()[0]
    assert names == [f"{log_id}-{size:012d}.json" for size in (10, 20, 25)]  # no temporary files left
    assert _audit(capsys, "checkpoint", "--data-dir", str(tmp_path / "data"))[1] == _checkpoints(witness)[-1]
    latest = witness / names[-1]
    assert _audit(capsys, "verify", "--data-dir", str(tmp_path / "data"), "--against", str(latest))[0] == 0


def test_a_witness_command_gets_each_signed_checkpoint_on_stdin(tmp_path: Path) -> None:
    got = tmp_path / "got.jsonl"
    command = shlex.join(["sh", "-c", f"cat >> {shlex.quote(str(got))}"])
    witness = tmp_path / "witness"
    make_log(
        tmp_path / "data", 25, checkpoint_every_records=10, witness_dir=str(witness), witness_command=command
    )
    assert got.read_text().splitlines(keepends=True) == _checkpoints(witness)


def test_a_failing_witness_is_logged_once_and_never_holds_up_a_decision(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken, calls = tmp_path / "broken", tmp_path / "calls"
    broken.touch()
    script = (
        "import sys, os; sys.stdin.read(); open(sys.argv[1], 'a').write('.');"
        "os.path.exists(sys.argv[2]) and sys.exit(3)"
    )
    command = shlex.join([sys.executable, "-c", script, str(calls), str(broken)])
    caplog.set_level(logging.INFO, logger="palisade.audit")
    with open_log(tmp_path / "data", checkpoint_every_records=1, witness_command=command) as log:
        fill(log, 3)  # a checkpoint each
        wait_until(lambda: calls.exists() and calls.read_text() == "...", "the witness has failed 3 times")
        broken.unlink()
        fill(log, 1)  # delivered after the three failures: the witness delivers in order, one at a time
        wait_until(lambda: "takes checkpoints again" in caplog.text, "the witness recovery is logged")
    lines = [r.getMessage() for r in caplog.records if "witness" in r.getMessage()]
    assert len(lines) == 2, lines
    assert lines[0].startswith("audit witness_command cannot take checkpoints: exit status 3")
    assert lines[1].startswith(
        "audit witness_command takes checkpoints again after 3 undelivered checkpoint(s)"
    )


def test_a_hanging_witness_is_cut_off_by_its_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    command = shlex.join([sys.executable, "-c", "import time; time.sleep(30)"])
    settings = {"witness_command": command, "witness_timeout_seconds": 0.2, "checkpoint_every_records": 1}
    started = time.monotonic()
    with open_log(tmp_path / "data", **settings) as log:
        fill(log, 5)
        assert time.monotonic() - started < 2  # decisions never wait for the witness
    assert "did not finish within 0.2 s" in caplog.text
    assert time.monotonic() - started < 10


def test_a_saved_checkpoint_from_before_a_prune_cannot_be_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_log(tmp_path / "data", 10, checkpoint_every_records=10)
    saved = _save_checkpoint(capsys, tmp_path / "data", tmp_path / "saved.json")
    make_log(tmp_path / "data", 20, checkpoint_every_records=10)
    status, _, _ = _audit(capsys, "prune", "--data-dir", str(tmp_path / "data"), "--max-records", "5")
    assert status == 0  # cut at checkpoint 20: records 1..10, which the saved checkpoint covers, are gone
    status, _, err = _audit(capsys, "verify", "--data-dir", str(tmp_path / "data"), "--against", str(saved))
    assert status == 2 and "the saved checkpoint covers records 1..10, which were pruned" in err


def test_checkpoint_before_the_first_one_is_signed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_log(tmp_path, checkpoint_every_records=1000) as log:
        fill(log, 1)
        status, out, err = _audit(capsys, "checkpoint", "--data-dir", str(tmp_path))
    assert (status, out) == (1, "") and "no signed checkpoint yet" in err


def test_a_witness_command_that_does_not_split_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"witness_command\n.*No closing quotation"):
        AuditConfig(durability="sync", witness_command="sh -c 'unbalanced")
