"""Journal durability: what a process answered before SIGKILL is in the log once the next one starts."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from audit_helpers import HERE, decide, fill, open_log, request, verify
from server_helpers import log_verifies

from benchmarks import chaos
from engine.audit import AuditPaths
from engine.audit.journal import Journal, encode
from engine.audit.keys import Digester, load_or_create_digester
from engine.audit.record import build_entry
from engine.audit.store import Store
from engine.runtime.ids import new_id

ROOT = HERE.parents[1]
RULESETS = ROOT / "benchmarks" / "grpc_rulesets"  # field-and-regex: starts in a few seconds
RULESET = "grpc_bench"
JOURNAL = ["--config", str(HERE / "journal.toml")]
LOAD_S = 1.5


def stored_ids(data_dir: Path) -> set[str]:
    return set(stored_order(data_dir))


def segments(data_dir: Path) -> list[Path]:
    return sorted(AuditPaths.of(data_dir).journal.glob("*.jnl"))


def test_a_clean_close_stores_everything_and_leaves_no_journal(tmp_path: Path) -> None:
    with open_log(tmp_path, durability="journal") as log:
        ids = fill(log, 50)
        assert len(segments(tmp_path)) == 1
    assert segments(tmp_path) == []
    assert stored_ids(tmp_path) == set(ids)
    assert verify(tmp_path).ok


def test_full_segments_go_once_their_records_are_stored(tmp_path: Path) -> None:
    decision, req = decide(request())
    entry = build_entry(decision, req, new_id(), digester(tmp_path))
    journal = Journal(AuditPaths.of(tmp_path).journal, segment_bytes=len(encode(entry)) * 2)
    for _ in range(5):  # segments of two entries: 2 full, 1 with one
        journal.write(encode(entry))
    assert len(segments(tmp_path)) == 3
    journal.committed(3)  # the first segment's two and one of the second's
    assert len(segments(tmp_path)) == 2
    journal.committed(2)
    assert len(segments(tmp_path)) == 1  # the current one stays, empty of pending entries
    journal.close()
    assert segments(tmp_path) == []


def digester(data_dir: Path) -> Digester:
    return load_or_create_digester(AuditPaths.of(data_dir).hmac_key)


def test_recovery_adds_dead_processes_records_in_order_once(tmp_path: Path) -> None:
    directory = AuditPaths.of(tmp_path).journal
    with open_log(tmp_path) as log:  # keys and database
        fill(log, 3)
    decision, req = decide(request())
    key = digester(tmp_path)
    entries = [build_entry(decision, req, new_id(), key) for _ in range(4)]
    directory.mkdir()
    dead = directory / "01000000-0000-7000-8000-000000000000-000001.jnl"
    dead.write_bytes(b"".join(encode(e) for e in entries) + encode(entries[0])[:30])  # a torn tail
    live = Journal(directory)  # a live process's segment: held, so not recovered while it lives
    kept = build_entry(decision, req, new_id(), key)
    live.write(encode(kept))

    with open_log(tmp_path):
        pass
    assert stored_order(tmp_path)[3:] == [e.decision_id for e in entries]
    assert not dead.exists()

    live.close()  # its entry never reached the store: the file stays
    dead.write_bytes(b"".join(encode(e) for e in entries[:2]))  # already stored: not added twice
    with open_log(tmp_path):
        pass
    assert stored_order(tmp_path)[3:] == [e.decision_id for e in entries] + [kept.decision_id]
    assert segments(tmp_path) == []
    report = verify(tmp_path)
    assert report.ok and report.records == 3 + 4 + 1


def stored_order(data_dir: Path) -> list[str]:
    store = Store.open_reader(AuditPaths.of(data_dir).database)
    try:
        return [row.decision_id for row in store.records()]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("workers", "victim"), [(1, "all"), (1, "all"), (2, "all"), (2, "all"), (2, "worker")]
)
def test_every_answered_decision_survives_sigkill_under_load(
    tmp_path: Path, workers: int, victim: str
) -> None:
    """SIGKILL under load (every process, or one worker whose replacement recovers its journal while
    the other serves), then a restart and a clean stop: every answered decision has its record."""
    with chaos.serve(tmp_path, workers, RULESETS, JOURNAL) as (proc, target):
        with chaos.load(target, RULESET) as answers:
            time.sleep(LOAD_S)
            if victim == "worker":
                os.kill(chaos.a_worker(proc.pid), signal.SIGKILL)
                time.sleep(LOAD_S * 2)  # the supervisor starts a new worker, which recovers first
            else:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if victim == "worker":
            proc.terminate()  # the supervisor stops its workers
            assert proc.wait(60) == 0
    assert len(answers.given) > 100
    answered = {decision_id for decision_id, _ in answers.given}
    if victim == "all":
        with chaos.serve(tmp_path, workers, RULESETS, JOURNAL) as (proc, _):
            proc.terminate()  # the supervisor stops its workers
            assert proc.wait(60) == 0
    assert answered <= stored_ids(tmp_path)
    assert segments(tmp_path) == []
    assert log_verifies(tmp_path)
