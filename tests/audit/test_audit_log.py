"""AuditLog end to end: append and verify, keys made once and reused, restarts, async mode."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from audit_helpers import decide, fill, make_log, open_log, request, verify

from engine.audit import AuditPaths, AuditUnavailable, DuplicateDecision
from engine.audit.keys import load_verifier
from engine.audit.store import Store
from engine.runtime.ids import new_id


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_appended_records_verify(tmp_path: Path) -> None:
    ids = make_log(tmp_path, 25, checkpoint_every_records=10)
    report = verify(tmp_path)
    assert report.ok, report.problem
    assert (report.records, report.first_seq, report.last_seq) == (25, 1, 25)
    assert report.checkpoints == 3  # at 10 and 20, and the final one at close
    assert report.signed == 25
    store = Store.open_reader(AuditPaths.of(tmp_path).database)
    assert [row.decision_id for row in store.records()] == ids


def test_keys_are_created_private_on_first_start_and_reused(tmp_path: Path) -> None:
    make_log(tmp_path, 3)
    paths = AuditPaths.of(tmp_path)
    assert _mode(paths.signing_key) == 0o600 and _mode(paths.hmac_key) == 0o600
    assert _mode(paths.database.parent) == 0o700
    key, hmac_key = paths.signing_key.read_bytes(), paths.hmac_key.read_bytes()
    first_key_id = load_verifier(paths.public_key).key_id
    make_log(tmp_path, 3)
    assert paths.signing_key.read_bytes() == key and paths.hmac_key.read_bytes() == hmac_key
    assert load_verifier(paths.public_key).key_id == first_key_id
    assert verify(tmp_path).ok


def test_configured_key_paths_are_used(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    settings = {"signing_key_path": str(keys / "log.key"), "hmac_key_path": str(keys / "content.hex")}
    make_log(tmp_path / "data", 2, **settings)
    assert (keys / "log.key").exists() and (keys / "log.pub").exists() and (keys / "content.hex").exists()
    assert not AuditPaths.of(tmp_path / "data").signing_key.exists()
    assert verify(tmp_path / "data", public_key=keys / "log.pub").ok


def test_the_chain_continues_across_restarts(tmp_path: Path) -> None:
    make_log(tmp_path, 4)
    decision, req = decide(request())
    with open_log(tmp_path) as log:
        record = log.append(decision, req, new_id())
    assert record is not None and record.seq == 5
    report = verify(tmp_path)
    assert report.ok and report.records == 5


def test_a_duplicate_decision_id_is_refused_and_the_chain_stays_whole(tmp_path: Path) -> None:
    decision, req = decide(request())
    with open_log(tmp_path) as log:
        taken = new_id()
        log.append(decision, req, taken)
        with pytest.raises(DuplicateDecision, match=taken):
            log.append(decision, req, taken)
        after = log.append(decision, req, new_id())
        assert log.healthy
    assert after is not None and after.seq == 2
    assert verify(tmp_path).ok


def test_async_mode_returns_at_once_and_writes_everything_by_close(tmp_path: Path) -> None:
    decision, req = decide(request())
    ids = [new_id() for _ in range(200)]
    with open_log(tmp_path, durability="async") as log:
        assert all(log.append(decision, req, decision_id) is None for decision_id in ids)
    assert log.pending == 0
    report = verify(tmp_path)
    assert report.ok and report.records == 200 and report.signed == 200


def test_appending_to_a_closed_log_is_unavailable(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    fill(log, 1)
    log.close()
    log.close()
    with pytest.raises(AuditUnavailable, match="closed"):
        fill(log, 1)


def test_a_log_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(AuditUnavailable, match="cannot open the audit log"):
        open_log(tmp_path / "file")
