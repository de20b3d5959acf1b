"""Retention: pruning cuts at a signed checkpoint, and what remains (and what comes after) still verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audit_helpers import database, decide, fill, make_log, open_log, request, verify

from engine.audit import AuditError, AuditPaths, Retention
from engine.audit.proof import prove
from engine.audit.retention import Pruned, prune
from engine.audit.store import Store
from engine.audit.verify import REWRITTEN, TRUNCATED
from engine.runtime.ids import new_id

NOW = datetime(2030, 6, 1, tzinfo=UTC)


def _prune(data_dir: Path, retention: Retention, now: datetime = NOW) -> Pruned:
    store = Store.open_writer(AuditPaths.of(data_dir).database, full_sync=True)
    try:
        return prune(store, retention, now)
    finally:
        store.close()


def test_pruning_by_count_cuts_at_the_last_checkpoint_it_may(tmp_path: Path) -> None:
    make_log(tmp_path, 55, checkpoint_every_records=10)
    pruned = _prune(tmp_path, Retention(max_records=15))  # 55 - 15 = 40: checkpoint 40 is the cut
    assert pruned == Pruned(start_after=40, deleted=40)
    report = verify(tmp_path)
    assert report.ok, report.problem
    assert (report.first_seq, report.last_seq, report.records) == (41, 55, 15)


def test_the_log_goes_on_after_a_prune_and_later_checkpoints_verify(tmp_path: Path) -> None:
    make_log(tmp_path, 23, checkpoint_every_records=4)
    _prune(tmp_path, Retention(max_records=5))  # cut at 16: not a power of two away from anything
    ids = make_log(tmp_path, 30, checkpoint_every_records=4)
    report = verify(tmp_path)
    assert report.ok, report.problem
    assert (report.first_seq, report.last_seq) == (17, 53)
    store = Store.open_reader(AuditPaths.of(tmp_path).database)
    assert prove(store, ids[-1])["tree_size"] == 53
    store.close()


def test_pruning_by_age_keeps_recent_records(tmp_path: Path) -> None:
    decision, req = decide(request())
    with open_log(tmp_path, checkpoint_every_records=5) as log:
        for days_ago in range(20, 0, -1):  # one record a day, oldest first
            log.append(decision, req, new_id(), at=NOW - timedelta(days=days_ago, hours=1))
    pruned = _prune(tmp_path, Retention(max_age_days=7.5))  # records 1..13 are older; checkpoint 10 cuts
    assert pruned == Pruned(start_after=10, deleted=10)
    assert verify(tmp_path).ok


def test_records_after_the_last_checkpoint_are_never_pruned(tmp_path: Path) -> None:
    with open_log(tmp_path, checkpoint_every_records=100) as log:
        fill(log, 30)
        assert _prune(tmp_path, Retention(max_records=1)) == Pruned(start_after=0, deleted=0)


def test_the_writer_prunes_after_each_checkpoint_when_retention_is_set(tmp_path: Path) -> None:
    make_log(tmp_path, 50, checkpoint_every_records=10, retention={"max_records": 20})
    report = verify(tmp_path)
    assert report.ok and (report.first_seq, report.last_seq) == (31, 50)


def test_an_edited_anchor_is_found(tmp_path: Path) -> None:
    make_log(tmp_path, 30, checkpoint_every_records=10)
    _prune(tmp_path, Retention(max_records=10))
    with database(tmp_path) as conn:
        conn.execute("UPDATE anchor SET frontier = zeroblob(length(frontier))")
    problem = verify(tmp_path).problem
    assert problem is not None and problem.kind == REWRITTEN


def test_a_pruned_log_without_its_cut_checkpoint_is_found(tmp_path: Path) -> None:
    make_log(tmp_path, 30, checkpoint_every_records=10)
    _prune(tmp_path, Retention(max_records=10))
    with database(tmp_path) as conn:
        conn.execute("DELETE FROM checkpoints WHERE size = 20")
    problem = verify(tmp_path).problem
    assert problem is not None and problem.kind == TRUNCATED


def test_pruning_refuses_a_log_that_does_not_match_its_checkpoint(tmp_path: Path) -> None:
    make_log(tmp_path, 30, checkpoint_every_records=10)
    with database(tmp_path) as conn:
        conn.execute("UPDATE records SET hash = ? WHERE seq = 20", ("ab" * 32,))
    with pytest.raises(AuditError, match="refusing to prune"):
        _prune(tmp_path, Retention(max_records=5))
