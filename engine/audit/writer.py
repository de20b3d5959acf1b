"""The group-committing audit writer: one thread, many records per transaction (one fsync), fail closed."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.audit.chain import Chain
from engine.audit.checkpoint import Checkpoint
from engine.audit.config import AuditConfig
from engine.audit.errors import AuditError, AuditUnavailable
from engine.audit.journal import Journal, encode
from engine.audit.outage import Outage
from engine.audit.record import Entry, Record
from engine.audit.retention import prune
from engine.audit.store import Store
from engine.runtime.observer import observer

log = logging.getLogger("palisade.audit")
HealthListener = Callable[[bool], None]
CheckpointListener = Callable[[Checkpoint], None]
# What a failing disk, file system or database raises; anything else is a bug and stops the writer.
_WRITE_ERRORS = (sqlite3.Error, OSError, AuditError)


@dataclass(frozen=True, slots=True)
class WriterStats:
    transactions: int  # committed transactions that appended records (each one fsync in sync mode)
    records: int
    checkpoints: int


class _Batch:
    """The records that one transaction commits, and their results once it has."""

    __slots__ = ("entries", "finished", "results", "waiters")

    def __init__(self, lock: threading.Lock) -> None:
        self.entries: list[Entry] = []
        self.results: list[Record | AuditError] = []
        self.finished = False
        self.waiters = threading.Condition(lock)  # sync callers: finished, or the turn is free to take

    def unavailable(self, message: str) -> list[Record | AuditError]:
        return [AuditUnavailable(message) for _ in self.entries]


class Writer:
    """Collects records from any number of threads and commits them in order, as few transactions as it can.

    One thread at a time writes (it holds the turn). In sync mode a caller that finds no one
    writing takes the turn and commits the records queued so far itself, its own among them; one
    that finds a transaction under way waits, and when it ends, either its record was in it or the
    caller takes the turn for the records that gathered meanwhile. So a lone caller pays one
    transaction and no hand-off to another thread, and the more callers wait, the more records share
    one fsync. In async mode ``submit`` returns at once and a background thread writes. That thread
    also signs time-based checkpoints and, while writing fails, retries every
    ``retry_every_seconds``: meanwhile every ``submit`` gets AuditUnavailable and the writer reports
    unhealthy, until a write as large as a batch of records works (a probe of PROBE_BYTES, or the
    kept records), so that a disk with a few bytes free does not flap. The outage is logged when it
    starts and when it ends, with the decisions it refused (engine/audit/outage.py), not per decision.
    A commit still unfinished after ``stall_seconds`` (a frozen disk) makes the writer unhealthy too,
    and refuses new records, until it finishes: a watchdog thread sees it, since the writing thread
    cannot. Async records are committed ``async_flush_ms`` after the first of them was queued, so that a
    busy server writes many per transaction. ``on_checkpoint`` hears of each checkpoint signed.
    """

    def __init__(
        self,
        connect: Callable[[], Store],
        chain: Chain,
        config: AuditConfig,
        on_health: HealthListener | None,
        on_checkpoint: CheckpointListener | None = None,
        *,
        journal: Journal | None = None,
    ) -> None:
        self._connect = connect
        self._journal = journal  # journal mode: each record is written there before submit returns
        self._store: Store | None = None
        self._chain = chain
        self._config = config
        self._on_checkpoint = on_checkpoint
        self._outage = Outage(
            log, "audit log cannot be written", "audit log writable again", "refused decision(s)"
        )
        self._durable = config.durability == "sync"
        self._flush_s = config.async_flush_ms / 1000
        self._flush_at = 0.0  # async: when the queued records are due
        self._on_health = on_health
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the background thread: something may be due
        self._space = threading.Condition(self._lock)
        self._batch = _Batch(self._lock)
        self._writing: _Batch | None = None  # the batch in the transaction now being written
        self._busy = False  # a thread holds the turn: it alone uses the store
        self._healthy = True
        self._problem = ""
        self._closing = False
        self._next_retry = 0.0
        self._unsigned = False  # records committed since this writer's last checkpoint
        self._rearm = False  # the first records since a checkpoint: the background thread sets its timer
        self._next_checkpoint = 0.0
        self._stats = WriterStats(0, 0, 0)
        self._turn_started: float | None = None  # when the turn holder started writing
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="palisade-audit-writer", daemon=True)
        self._thread.start()
        watchdog = threading.Thread(target=self._watch, name="palisade-audit-watchdog", daemon=True)
        watchdog.start()

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def stats(self) -> WriterStats:
        return self._stats

    @property
    def pending(self) -> int:
        """Records submitted and not yet committed (in async mode: what a crash now would lose)."""
        with self._lock:
            return len(self._batch.entries) + (len(self._writing.entries) if self._writing else 0)

    def submit(self, entry: Entry) -> Record | None:
        """Queue ``entry``; in sync mode return it as sealed once it is committed."""
        line = encode(entry) if self._journal is not None else b""  # before the lock: CPU work
        with self._lock:
            self._admit()
            batch = self._batch
            index = len(batch.entries)
            if self._journal is not None:  # in the journal's order, which is the queue's
                self._journal.write(line)
            batch.entries.append(entry)
            if not self._durable:
                if not index:  # the first queued: the background thread sets its timer
                    self._flush_at = time.monotonic() + self._flush_s
                    self._work.notify()
                return None
            while self._busy and not batch.finished:
                batch.waiters.wait()
            if not batch.finished:
                self._busy = True
                self._take()
        if not batch.finished:
            self._write_turn(batch)
        result = batch.results[index]
        if isinstance(result, Record):
            return result
        raise result

    def close(self) -> None:
        """Commit what is queued, sign a final checkpoint, and stop the thread."""
        with self._lock:
            self._closing = True
            self._work.notify()
            self._space.notify_all()
        self._thread.join()

    # under the lock

    def _admit(self) -> None:
        while True:
            if self._closing:
                raise AuditUnavailable("the audit log is closed")
            if not self._healthy:
                self._outage.cost()
                raise AuditUnavailable(f"the audit log cannot be written: {self._problem}")
            if len(self._batch.entries) < self._config.queue_size:
                return
            self._work.notify()  # a full queue is due at once (async)
            self._space.wait()

    def _due(self) -> bool:
        """Whether the background thread has work: async records, a checkpoint, a retry, or closing."""
        if self._closing:
            return True
        now = time.monotonic()
        if not self._healthy:
            return now >= self._next_retry
        queued = len(self._batch.entries) if not self._durable else 0  # sync callers write their own
        flush = queued >= self._config.queue_size or (queued > 0 and now >= self._flush_at)
        return flush or (self._unsigned and now >= self._next_checkpoint)

    def _timeout(self) -> float | None:
        if not self._healthy:
            return max(self._next_retry - time.monotonic(), 0.0)
        due = [self._next_checkpoint] if self._unsigned else []
        if self._batch.entries and not self._durable:
            due.append(self._flush_at)
        return max(min(due) - time.monotonic(), 0.0) if due else None

    def _take(self) -> _Batch:
        self._turn_started = time.monotonic()
        taken = self._writing = self._batch
        self._batch = _Batch(self._lock)
        self._space.notify_all()
        return taken

    def _release(self) -> None:
        self._busy = False
        self._turn_started = None
        self._writing = None
        self._batch.waiters.notify()  # one of the callers whose records gathered meanwhile takes the turn
        if self._rearm or self._due():  # a checkpoint timer to set, or work that waited for the turn
            self._rearm = False
            self._work.notify()

    # whoever holds the turn

    def _write_turn(self, batch: _Batch) -> None:
        """Write ``batch`` (taken with the turn), sign a checkpoint if one is due, give the turn back.

        An unexpected error (a bug, not a disk) fails this batch closed and makes the writer
        unhealthy until its retry works; it never leaves a caller waiting."""
        try:
            self._write(batch)
            if self._healthy and self._unsigned and time.monotonic() >= self._next_checkpoint:
                self._checkpoint()
        except Exception:
            log.exception("the audit writer failed on an unexpected error")
            refused = 0 if batch.finished else len(batch.entries)
            self._set_unhealthy("the audit writer failed on an unexpected error (see the log)", refused)
        finally:
            if not batch.finished:
                message = "the audit record could not be written: an unexpected error (see the log)"
                self._finish(batch, batch.unavailable(message))
            with self._lock:
                self._release()

    # the background thread

    def _run(self) -> None:
        try:
            while self._step():
                pass
        except BaseException:  # a bug, not a disk: fail closed for good rather than leave callers hanging
            log.exception("the audit writer stopped on an unexpected error")
            self._set_unhealthy("the audit writer stopped on an unexpected error (see the log)")
        finally:
            self._shut_down()

    def _step(self) -> bool:
        """One round: write a batch (or probe, or checkpoint). False once closing and nothing is left."""
        with self._lock:
            while self._busy or not self._due():
                self._work.wait(self._timeout())
            self._busy = True
            batch = self._take()
            closing = self._closing
        try:
            if batch.entries:
                self._write(batch)
            elif not self._healthy:
                self._probe()
            if self._healthy and self._unsigned and (closing or time.monotonic() >= self._next_checkpoint):
                self._checkpoint()
        finally:
            with self._lock:
                self._release()
        with self._lock:
            return not closing or (self._healthy and bool(self._batch.entries))

    def _write(self, batch: _Batch) -> None:
        started = time.perf_counter()
        try:
            results, checkpoint = self._chain.append(self._open(), batch.entries)
        except _WRITE_ERRORS as exc:
            self._failed(exc, refused=len(batch.entries) if self._durable else 0)
            self._reject(batch)
            return
        self._recovered()
        written = sum(isinstance(r, Record) for r in results)
        self._count(transactions=1, records=written)
        observer().audit_committed(written, time.perf_counter() - started, len(self._batch.entries))
        if written and not self._unsigned:
            self._next_checkpoint = time.monotonic() + self._config.checkpoint_every_seconds
            self._rearm = True
        self._unsigned = self._unsigned or bool(written)
        self._finish(batch, results)
        if self._journal is not None:
            self._journal.committed(len(batch.entries))
        if checkpoint is not None:
            self._signed(checkpoint)

    def _reject(self, batch: _Batch) -> None:
        if self._durable:
            self._finish(batch, batch.unavailable(f"the audit record could not be written: {self._problem}"))
            return
        with self._lock:  # async: the records were accepted; keep them, in order, for the retry
            self._batch.entries[:0] = batch.entries
            self._writing = None

    def _finish(self, batch: _Batch, results: list[Record | AuditError]) -> None:
        with self._lock:
            batch.results = results
            batch.finished = True
            batch.waiters.notify_all()

    def _probe(self) -> None:
        try:
            store = self._open()
            with store.transaction():
                store.probe()
        except _WRITE_ERRORS as exc:
            self._failed(exc)
            return
        self._recovered()

    def _checkpoint(self) -> None:
        try:
            checkpoint = self._chain.checkpoint(self._open())
        except _WRITE_ERRORS as exc:
            self._failed(exc)
            return
        self._unsigned = False
        if checkpoint is not None:
            self._signed(checkpoint)

    def _signed(self, checkpoint: Checkpoint) -> None:
        """After a checkpoint: count it, and prune if retention is set (cuts happen only at checkpoints)."""
        self._unsigned = False
        self._count(checkpoints=1)
        log.debug("audit checkpoint signed at %d record(s)", checkpoint.size)
        if self._on_checkpoint is not None:
            self._on_checkpoint(checkpoint)
        if not self._config.retention.enabled:
            return
        try:
            pruned = prune(self._open(), self._config.retention, datetime.now(UTC))
        except _WRITE_ERRORS as exc:
            self._failed(exc)
            return
        if pruned.deleted:
            log.info(
                "audit retention: pruned %d record(s); the log now starts after %d",
                pruned.deleted,
                pruned.start_after,
            )

    def _open(self) -> Store:
        if self._store is None:
            self._store = self._connect()
        return self._store

    def _count(self, transactions: int = 0, records: int = 0, checkpoints: int = 0) -> None:
        s = self._stats
        self._stats = WriterStats(
            s.transactions + transactions, s.records + records, s.checkpoints + checkpoints
        )

    # health

    def _failed(self, exc: BaseException, refused: int = 0) -> None:
        if self._store is not None:  # a fresh connection for the retry; closing rolls back what was open
            with suppress(sqlite3.Error):
                self._store.close()
            self._store = None
        self._set_unhealthy(_describe(exc), refused)

    def _set_unhealthy(self, problem: str, refused: int = 0) -> None:
        """Writing fails (``refused`` records were refused for it): logged when it starts, not each time."""
        with self._lock:
            was_healthy, self._healthy, self._problem = self._healthy, False, problem
            self._next_retry = time.monotonic() + self._config.retry_every_seconds
            self._space.notify_all()
            self._work.notify()
        self._outage.fail(problem, refused)
        if was_healthy and self._on_health is not None:
            self._on_health(False)

    def _recovered(self) -> None:
        if self._healthy:
            return
        with self._lock:
            self._healthy, self._problem = True, ""
        self._outage.recover()
        if self._on_health is not None:
            self._on_health(True)

    def _watch(self) -> None:
        """Every quarter of ``stall_seconds``: a commit running longer than that is a stalled disk."""
        bound = self._config.stall_seconds
        while not self._stopped.wait(bound / 4):
            with self._lock:
                started, healthy = self._turn_started, self._healthy
            if healthy and started is not None and time.monotonic() - started > bound:
                self._set_unhealthy(f"a commit has not finished in {bound:g} s: the disk may be stalled")

    def _shut_down(self) -> None:
        """Release every caller still waiting (records a failure left unwritten), then the database."""
        self._stopped.set()
        with self._lock:
            self._closing = True
            left = [b for b in (self._writing, self._batch) if b is not None and b.entries and not b.finished]
            self._writing, self._batch = None, _Batch(self._lock)
            self._space.notify_all()
        for batch in left:
            log.error("audit log closed with %d record(s) not written: %s", len(batch.entries), self._problem)
            message = f"the audit log closed before the record was written: {self._problem}"
            self._finish(batch, batch.unavailable(message))
        if self._store is not None:
            with suppress(sqlite3.Error):
                self._store.close()
            self._store = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, sqlite3.Error) else str(exc)
