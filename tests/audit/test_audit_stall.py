"""A stalled disk: a commit unfinished after stall_seconds makes the log unhealthy until it finishes."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest
from audit_helpers import decide, request

from engine.audit import AuditConfig, AuditLog, AuditPaths, AuditUnavailable
from engine.audit.record import Record
from engine.audit.store import lock_path
from engine.runtime.ids import new_id

WAIT_S = 30.0


def test_a_stalled_commit_is_unhealthy_until_it_finishes(tmp_path: Path) -> None:
    health: list[bool] = []
    changed = threading.Condition()

    def hear(ok: bool) -> None:
        with changed:
            health.append(ok)
            changed.notify_all()

    log = AuditLog.open(tmp_path, AuditConfig(durability="sync", stall_seconds=0.4), on_health=hear)
    decision, req = decide(request())
    log.append(decision, req, new_id())  # the database exists, healthy
    lock = os.open(lock_path(AuditPaths.of(tmp_path).database), os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another process holds the database: every commit waits
    done: list[Record | None] = []
    stalled = threading.Thread(target=lambda: done.append(log.append(decision, req, new_id())))
    try:
        stalled.start()
        with changed:
            assert changed.wait_for(lambda: health == [False], WAIT_S)
        with pytest.raises(AuditUnavailable, match="may be stalled"):
            log.append(decision, req, new_id())  # refused at once while the commit hangs
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    stalled.join(WAIT_S)
    assert done and isinstance(done[0], Record)  # the stalled record was committed after all
    with changed:
        assert changed.wait_for(lambda: health == [False, True], WAIT_S)
    log.append(decision, req, new_id())
    log.close()
