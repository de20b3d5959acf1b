"""The group-committing writer: many threads, one chain in commit order, many records per transaction."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from audit_helpers import decide, fill, make_log, open_log, request, verify, wait_until

from engine.audit import AuditLog, AuditPaths, DuplicateDecision, Record
from engine.audit.chain import Chain
from engine.audit.keys import load_or_create_digester, load_or_create_signer
from engine.audit.record import Entry, build_entry
from engine.audit.store import Store
from engine.runtime.ids import new_id


def _append_from_threads(log_dir: Path, threads: int, each: int, **settings: object) -> list[Record]:
    decision, req = decide(request())
    records: list[Record] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(each):
            record = log.append(decision, req, new_id())
            assert record is not None
            with lock:
                records.append(record)

    with open_log(log_dir, **settings) as log:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return records


def test_many_threads_make_one_unbroken_chain(tmp_path: Path) -> None:
    records = _append_from_threads(tmp_path, threads=16, each=40, checkpoint_every_records=100)
    assert sorted(r.seq for r in records) == list(range(1, 641))
    by_seq = {r.seq: r for r in records}
    assert all(by_seq[seq].prev_hash == by_seq[seq - 1].hash for seq in range(2, 641))
    report = verify(tmp_path)
    assert report.ok and report.records == 640 and report.signed == 640


def test_records_that_arrive_during_a_commit_share_the_next_transaction(tmp_path: Path) -> None:
    callers = 50
    decision, req = decide(request())
    with open_log(tmp_path) as log:
        log.append(decision, req, new_id())  # the database exists; one transaction so far
        blocker = sqlite3.connect(AuditPaths.of(tmp_path).database, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # hold the write lock: the writer's next commit must wait
        threads = [
            threading.Thread(target=log.append, args=(decision, req, new_id())) for _ in range(callers)
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: log.pending == callers, "every caller has submitted")
        blocker.execute("ROLLBACK")
        blocker.close()
        for thread in threads:
            thread.join()
        stats = log.stats
    # the writer took what was queued when it began, waited on the lock, then took all the rest
    assert stats.records == callers + 1
    assert stats.transactions <= 3
    assert verify(tmp_path).ok


def test_sync_append_returns_only_when_the_record_is_committed(tmp_path: Path) -> None:
    decision, req = decide(request())
    with open_log(tmp_path) as log:
        record = log.append(decision, req, new_id())
        assert record is not None
        store = Store.open_reader(AuditPaths.of(tmp_path).database)
        stored = store.find(record.decision_id)
        store.close()
    assert stored is not None and stored.body == record.body


def test_two_logs_on_one_data_directory_make_one_chain(tmp_path: Path) -> None:
    """As server worker processes do: each has its own writer; SQLite's write lock orders their batches."""
    decision, req = decide(request())
    first, second = (
        open_log(tmp_path, checkpoint_every_records=7),
        open_log(tmp_path, checkpoint_every_records=7),
    )

    def work(log: AuditLog) -> None:
        for _ in range(150):
            log.append(decision, req, new_id())

    threads = [threading.Thread(target=work, args=(log,)) for log in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first.close()
    second.close()
    report = verify(tmp_path)
    assert report.ok, report.problem
    assert report.records == 600 and report.signed == 600


def test_a_duplicate_within_one_batch_takes_no_place_in_the_chain(tmp_path: Path) -> None:
    make_log(tmp_path, 1)
    paths = AuditPaths.of(tmp_path)
    store = Store.open_writer(paths.database, full_sync=True)
    chain = Chain(load_or_create_signer(paths.signing_key), "test-log", 100)
    decision, req = decide(request())
    digester = load_or_create_digester(paths.hmac_key)
    twice, other = new_id(), new_id()
    entries = [build_entry(decision, req, decision_id, digester) for decision_id in (twice, twice, other)]
    results, _ = chain.append(store, entries)
    store.close()
    assert isinstance(results[1], DuplicateDecision)
    assert [r.seq for r in results if isinstance(r, Record)] == [2, 3]
    assert verify(tmp_path).ok


def _chain_and_store(log_dir: Path) -> tuple[Chain, Store]:
    paths = AuditPaths.of(log_dir)
    store = Store.open_writer(paths.database, full_sync=True)
    return Chain(load_or_create_signer(paths.signing_key), "test-log", 100), store


def _entries(log_dir: Path, decision_ids: list[str]) -> list[Entry]:
    decision, req = decide(request())
    digester = load_or_create_digester(AuditPaths.of(log_dir).hmac_key)
    return [build_entry(decision, req, decision_id, digester) for decision_id in decision_ids]


def test_a_duplicate_in_a_later_batch_is_refused_and_the_rest_placed_after_the_head(tmp_path: Path) -> None:
    make_log(tmp_path, 1)
    chain, store = _chain_and_store(tmp_path)
    first = new_id()
    chain.append(store, _entries(tmp_path, [first]))  # the chain now remembers the head it wrote
    results, _ = chain.append(store, _entries(tmp_path, [new_id(), first, new_id()]))
    store.close()
    assert isinstance(results[1], DuplicateDecision)
    assert [r.seq for r in results if isinstance(r, Record)] == [3, 4]
    assert verify(tmp_path).ok


def test_a_head_moved_by_another_writer_is_read_again_even_when_no_seq_collides(tmp_path: Path) -> None:
    make_log(tmp_path, 1)
    mine, store = _chain_and_store(tmp_path)
    other, other_store = _chain_and_store(tmp_path)
    mine.append(store, _entries(tmp_path, [new_id()]))  # remembers head 2
    other.append(other_store, _entries(tmp_path, [new_id(), new_id()]))  # head 4
    for table in ("records", "record_rules"):  # seqs 3 and 4 free again
        other_store.conn.execute(f"DELETE FROM {table} WHERE seq > 2")
    other_store.close()
    results, _ = mine.append(store, _entries(tmp_path, [new_id()]))
    head = store.head()
    store.close()
    assert [r.seq for r in results if isinstance(r, Record)] == [5]
    assert head.size == 5 and isinstance(results[0], Record) and head.last_hash == results[0].hash


def test_a_checkpoint_is_signed_within_the_interval_when_records_wait(tmp_path: Path) -> None:
    with open_log(tmp_path, checkpoint_every_records=1000, checkpoint_every_seconds=0.05) as log:
        fill(log, 3)
        wait_until(lambda: log.stats.checkpoints == 1, "the timed checkpoint is signed")
        assert verify(tmp_path).signed == 3


def test_async_records_wait_for_the_flush_interval_and_share_one_transaction(tmp_path: Path) -> None:
    with open_log(tmp_path, durability="async", async_flush_ms=1000) as log:
        fill(log, 20)
        assert log.pending == 20 and log.stats.transactions == 0  # within the interval: queued
        wait_until(lambda: log.pending == 0, "the queued records are committed")
        assert (log.stats.transactions, log.stats.records) == (1, 20)


def test_async_records_with_no_flush_interval_are_written_at_once(tmp_path: Path) -> None:
    with open_log(tmp_path, durability="async", async_flush_ms=0) as log:
        fill(log, 1)
        wait_until(lambda: log.pending == 0, "the record is committed")
        fill(log, 1)
        wait_until(lambda: log.pending == 0, "the second record is committed")
        assert (log.stats.transactions, log.stats.records) == (2, 2)
