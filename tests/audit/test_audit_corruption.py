"""Damage to any value the verifier reads: a named problem and verify's exit status 1, never a traceback.

Each test damages one column of one row of a real log (pruned, so that every table has rows) with
random bytes, text that is not UTF-8, or a wrong number, then runs `palisade audit` commands on it.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_helpers import database, make_log

from engine.audit import AuditPaths, Retention
from engine.audit.retention import prune
from engine.audit.store import Store
from engine.cli.main import main

# (table, column, the row damaged): every column of every table that verification reads
COLUMNS = [
    ("meta", "key", "key = 'log_id'"),
    ("meta", "value", "key = 'log_id'"),
    *[("head", column, "id = 1") for column in ("size", "last_hash", "frontier", "checkpoint_size")],
    *[
        ("records", column, "seq = 20")
        for column in ("decision_id", "time", "outcome", "ruleset", "principal", "body", "hash")
    ],
    ("record_rules", "rule", "seq = 20"),
    ("record_rules", "seq", "seq = 20"),
    *[("checkpoints", column, "size = 20") for column in ("statement", "signature", "frontier")],
    *[("anchor", column, "id = 1") for column in ("size", "head", "frontier")],
]
DAMAGE = {"bytes": "randomblob(33)", "not UTF-8": "CAST(x'ff00fe' AS TEXT)", "number": "7"}
# integer primary keys hold integers only: a wrong one is all the damage they can take
KEYS = [("records", "seq", "seq = 20"), ("checkpoints", "size", "size = 20")]
CASES = [(*column, value) for column in COLUMNS for value in DAMAGE] + [(*key, "number") for key in KEYS]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 records, checkpoints every 10, pruned at 10: anchor, checkpoints, records, rules: all have rows."""
    data_dir = tmp_path_factory.mktemp("pristine")
    make_log(data_dir, 30, checkpoint_every_records=10)
    store = Store.open_writer(AuditPaths.of(data_dir).database, full_sync=True)
    try:
        assert prune(store, Retention(max_records=15), datetime.now(UTC)).start_after == 10
    finally:
        store.close()
    return data_dir


@pytest.fixture()
def data_dir(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "data")
    return tmp_path / "data"


def _audit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(["audit", *argv])
    return status, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[f"{case[0]}.{case[1]}-{case[3]}" for case in CASES])
def test_damage_to_any_column_is_named(
    data_dir: Path, capsys: pytest.CaptureFixture[str], case: tuple[str, str, str, str]
) -> None:
    table, column, row, damage = case
    assert _audit(capsys, "verify", "--data-dir", str(data_dir))[0] == 0
    with database(data_dir) as conn:
        changed = conn.execute(f"UPDATE {table} SET {column} = {DAMAGE[damage]} WHERE {row}").rowcount
    assert changed == 1
    status, err = _audit(capsys, "verify", "--data-dir", str(data_dir))
    assert status == 1, err
    assert err.startswith("audit log BROKEN at ") and err.count("\n") == 1
    for command in ("export", "query", "tail", "checkpoint"):  # the readers: output, or a named error
        status, err = _audit(capsys, command, "--data-dir", str(data_dir))
        assert status == 0 or (status == 2 and err.startswith("palisade audit: ")), (command, err)


def test_a_malformed_head_frontier_is_named(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with database(data_dir) as conn:
        conn.execute("UPDATE head SET frontier = x'00'")
    status, err = _audit(capsys, "verify", "--data-dir", str(data_dir))
    assert status == 1
    assert "log: corrupt: head: column frontier holds 1 byte(s), not the 128 bytes of a tree of 30" in err


def test_a_head_that_disagrees_with_the_records_is_named(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with database(data_dir) as conn:
        (last,) = conn.execute("SELECT hash FROM records WHERE seq = 29").fetchone()
        conn.execute("UPDATE head SET last_hash = ?", (last,))
    status, err = _audit(capsys, "verify", "--data-dir", str(data_dir))
    assert status == 1
    assert "log: corrupt: the head (where the next record is chained) says its last hash is" in err


def test_a_damaged_database_file_is_named(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database_file = AuditPaths.of(data_dir).database
    data = bytearray(database_file.read_bytes())
    page = 4096
    for start in range(2 * page, len(data), 3 * page):  # every third page from the third on
        data[start + 8 : start + page] = bytes(range(256)) * ((page - 8) // 256) + bytes((page - 8) % 256)
    database_file.write_bytes(bytes(data))
    status, err = _audit(capsys, "verify", "--data-dir", str(data_dir))
    assert status in (1, 2)
    assert err.startswith(("audit log BROKEN at ", "palisade audit: ")), err
