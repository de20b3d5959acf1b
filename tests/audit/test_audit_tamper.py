"""Tampering with a closed log, as anyone who can write its files could: each kind is found and named."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_helpers import database, make_log, verify
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.audit.canonical import canonical_json
from engine.audit.checkpoint import sign_checkpoint
from engine.audit.keys import Signer
from engine.audit.merkle import Frontier, leaf_hash
from engine.audit.record import record_hash
from engine.audit.verify import DELETED, EDITED, FORGED, REORDERED, REWRITTEN, TRUNCATED, Problem

RECORDS = 30  # checkpoints at 10, 20 and 30


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    make_log(tmp_path, RECORDS, checkpoint_every_records=10)
    report = verify(tmp_path)
    assert report.ok and report.checkpoints == 3
    return tmp_path


def _problem(data_dir: Path) -> Problem:
    report = verify(data_dir)
    assert report.problem is not None, "tampering went unnoticed"
    return report.problem


def _body(conn: sqlite3.Connection, seq: int) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        conn.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()[0]
    )
    return data


def test_an_edited_field_is_found(data_dir: Path) -> None:
    with database(data_dir) as conn:
        edit = "UPDATE records SET body = replace(body, ?, ?) WHERE seq = 7"
        conn.execute(edit, ('"outcome":"block"', '"outcome":"allow"'))
    problem = _problem(data_dir)
    assert (problem.kind, problem.seq) == (EDITED, 7)
    assert "its contents do not match its hash" in problem.message
    assert "record 7 (decision " in str(problem)


def test_an_edited_index_column_is_found(data_dir: Path) -> None:
    with database(data_dir) as conn:
        conn.execute("UPDATE records SET outcome = 'allow' WHERE seq = 9")
    problem = _problem(data_dir)
    assert (problem.kind, problem.seq) == (EDITED, 9)
    assert "column outcome says 'allow' but the record says 'block'" in problem.message


def test_a_deleted_record_is_found(data_dir: Path) -> None:
    with database(data_dir) as conn:
        conn.execute("DELETE FROM records WHERE seq = 12")
    problem = _problem(data_dir)
    assert (problem.kind, problem.seq) == (DELETED, 12)
    assert "record 12 is missing" in problem.message


def test_swapped_records_are_found(data_dir: Path) -> None:
    columns = "decision_id, time, outcome, ruleset, principal, body, hash"
    with database(data_dir) as conn:
        five = conn.execute(f"SELECT {columns} FROM records WHERE seq = 5").fetchone()
        six = conn.execute(f"SELECT {columns} FROM records WHERE seq = 6").fetchone()
        update = f"UPDATE records SET ({columns}) = (?, ?, ?, ?, ?, ?, ?) WHERE seq = ?"
        conn.execute("UPDATE records SET decision_id = 'moving' WHERE seq = 5")
        conn.execute(update, (*five, 6))
        conn.execute(update, (*six, 5))
    problem = _problem(data_dir)
    assert (problem.kind, problem.seq) == (REORDERED, 5)
    assert "record 6 is stored where record 5 belongs" in problem.message


def test_a_cut_tail_is_found_by_its_checkpoint(data_dir: Path) -> None:
    with database(data_dir) as conn:
        conn.execute("DELETE FROM records WHERE seq > 25")
    problem = _problem(data_dir)
    assert (problem.kind, problem.seq) == (TRUNCATED, 26)
    assert "checkpoint 30 is signed over 30 records but the log ends at record 25" in problem.message


def test_a_cut_tail_with_its_checkpoint_is_found_by_the_head(data_dir: Path) -> None:
    with database(data_dir) as conn:
        conn.execute("DELETE FROM records WHERE seq > 25")
        conn.execute("DELETE FROM checkpoints WHERE size > 25")
    problem = _problem(data_dir)
    assert (problem.kind, problem.seq) == (TRUNCATED, 26)
    assert "30 records were written" in problem.message


def test_an_altered_checkpoint_is_found(data_dir: Path) -> None:
    with database(data_dir) as conn:
        statement = json.loads(
            conn.execute("SELECT statement FROM checkpoints WHERE size = 20").fetchone()[0]
        )
        statement["root"] = "00" * 32
        conn.execute("UPDATE checkpoints SET statement = ? WHERE size = 20", (canonical_json(statement),))
    problem = _problem(data_dir)
    assert problem.kind == FORGED
    assert "checkpoint 20: the signature does not verify" in problem.message


def test_a_checkpoint_signed_with_another_key_is_found(data_dir: Path) -> None:
    forger = Signer(Ed25519PrivateKey.generate())
    with database(data_dir) as conn:
        log_id = conn.execute("SELECT value FROM meta WHERE key = 'log_id'").fetchone()[0]
        frontier = Frontier()
        for (digest,) in conn.execute("SELECT hash FROM records WHERE seq <= 20 ORDER BY seq").fetchall():
            frontier.append(leaf_hash(bytes.fromhex(digest)))
        head = conn.execute("SELECT hash FROM records WHERE seq = 20").fetchone()[0]
        forged = sign_checkpoint(forger, log_id, frontier, head, datetime.now(UTC))
        conn.execute(
            "UPDATE checkpoints SET statement = ?, signature = ? WHERE size = 20",
            (forged.statement, forged.signature),
        )
    problem = _problem(data_dir)
    assert problem.kind == FORGED
    assert f"it names key {forger.verifier.key_id[:16]}" in problem.message


def test_a_garbled_signature_is_found(data_dir: Path) -> None:
    with database(data_dir) as conn:
        conn.execute(
            "UPDATE checkpoints SET signature = ? WHERE size = 10", (base64.b64encode(b"x" * 64).decode(),)
        )
    assert _problem(data_dir).kind == FORGED


def test_a_rewritten_and_rechained_log_is_found_by_the_signed_root(data_dir: Path) -> None:
    """Edit record 15, then recompute every hash after it: the chain is whole, the signed roots are not."""
    with database(data_dir) as conn:
        prev = conn.execute("SELECT hash FROM records WHERE seq = 14").fetchone()[0]
        for seq in range(15, RECORDS + 1):
            data = _body(conn, seq)
            if seq == 15:
                data["outcome"] = "allow"
            data["prev_hash"] = prev
            data["hash"] = prev = record_hash(data)
            conn.execute(
                "UPDATE records SET body = ?, hash = ?, outcome = ? WHERE seq = ?",
                (canonical_json(data), prev, data["outcome"], seq),
            )
        conn.execute("UPDATE head SET last_hash = ?", (prev,))
    problem = _problem(data_dir)
    assert (problem.kind, problem.seq) == (REWRITTEN, 11)
    assert "records 11..20 do not match the Merkle root signed in checkpoint 20" in problem.message


def test_a_deleted_rule_index_entry_is_found(data_dir: Path) -> None:
    """`query --rule` reads the rule index: rows deleted from it would hide the record from the query."""
    with database(data_dir) as conn:
        conn.execute("DELETE FROM record_rules WHERE seq = 14")
    problem = _problem(data_dir)
    assert (problem.kind, problem.seq) == (EDITED, 14)
    assert "the rule index lists no rule but the record names ['no_ssn']" in problem.message


def test_an_added_rule_index_entry_is_found(data_dir: Path) -> None:
    with database(data_dir) as conn:
        conn.execute("INSERT INTO record_rules (rule, seq) VALUES ('refunds', 8)")
    problem = _problem(data_dir)
    assert (problem.kind, problem.seq) == (EDITED, 8)
    assert "the rule index lists ['no_ssn', 'refunds'] but the record names ['no_ssn']" in problem.message


def test_a_rule_index_entry_for_no_record_is_found(data_dir: Path) -> None:
    with database(data_dir) as conn:
        conn.execute("INSERT INTO record_rules (rule, seq) VALUES ('no_ssn', 31)")
    problem = _problem(data_dir)
    assert (problem.kind, problem.seq) == (EDITED, 31)
    assert "the rule index lists record 31, which the log does not hold" in problem.message
