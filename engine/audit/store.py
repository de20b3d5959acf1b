"""The audit store: one SQLite database (WAL) holding records, checkpoints and the chain's head."""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from engine.audit.checkpoint import Checkpoint
from engine.audit.errors import AuditError
from engine.audit.merkle import HASH_BYTES, Frontier
from engine.audit.record import GENESIS_HASH, Record

DB_NAME = "audit.db"
_BUSY_TIMEOUT_S = 10.0
# What a probe writes while writing fails: about what a batch of records needs. Space for this much
# means space for records, so a disk with a few bytes free does not flap between failing and writable.
PROBE_BYTES = 64 * 1024
_HASH = re.compile("[0-9a-f]{64}")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    frontier BLOB NOT NULL,
    checkpoint_size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    outcome TEXT NOT NULL,
    ruleset TEXT NOT NULL,
    principal TEXT NOT NULL,
    body TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_time ON records (time);
CREATE INDEX IF NOT EXISTS records_outcome ON records (outcome);
CREATE INDEX IF NOT EXISTS records_ruleset ON records (ruleset);
CREATE INDEX IF NOT EXISTS records_principal ON records (principal);
CREATE TABLE IF NOT EXISTS record_rules (
    rule TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (rule, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    statement TEXT NOT NULL,
    signature TEXT NOT NULL,
    frontier BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    head TEXT NOT NULL,
    frontier BLOB NOT NULL
);
DROP TABLE IF EXISTS probe;  -- the earlier probe, a counter: too small a write to show a disk has room
CREATE TABLE IF NOT EXISTS space_probe (id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB NOT NULL);
INSERT OR IGNORE INTO head VALUES (1, 0, '{GENESIS_HASH}', x'', 0);
"""


class Connection(Protocol):
    """What the store needs of a database connection: SQLite's, or engine/store/postgres.py's."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any: ...

    def close(self) -> None: ...


class StoreError(AuditError):
    """The audit database cannot be opened or read; the message names the file."""


class DuplicateRow(StoreError):
    """A row with a key already stored (a decision id): what SQLite's IntegrityError is to the chain."""


class CorruptError(StoreError):
    """A stored value has the wrong type or shape; the message names the table, the row and the column."""

    def __init__(self, message: str, seq: int = 0) -> None:
        super().__init__(message)
        self.seq = seq  # the record it is in, or 0


@dataclass(frozen=True, slots=True)
class Head:
    """The end of the chain: the number of records ever written, the last one's hash, the tree frontier."""

    size: int
    last_hash: str
    frontier: Frontier
    checkpoint_size: int


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a pruned log now starts: records 1..size are gone; this is what later records chain to."""

    size: int
    head: str
    frontier: Frontier

    @classmethod
    def at(cls, checkpoint: Checkpoint) -> Anchor:
        """The anchor of a cut at ``checkpoint``: its size, last record hash and frontier."""
        return cls(
            checkpoint.size, checkpoint.head, Frontier.from_bytes(checkpoint.size, checkpoint.frontier)
        )


@dataclass(frozen=True, slots=True)
class Stored:
    """A record as stored: its indexed columns and its canonical body."""

    seq: int
    decision_id: str
    time: str
    outcome: str
    ruleset: str
    principal: str
    body: str
    hash: str


@dataclass(frozen=True, slots=True)
class Filters:
    """What `palisade audit query` selects by; empty fields select everything."""

    since: str = ""  # RFC 3339 UTC as records write it; inclusive
    until: str = ""  # exclusive
    outcome: str = ""
    ruleset: str = ""
    rule: str = ""
    principal: str = ""
    after_seq: int = 0
    limit: int = 0  # 0: no limit


def db_path(audit_dir: Path) -> Path:
    return audit_dir / DB_NAME


def lock_path(database: Path) -> Path:
    """The file whose flock orders the writers of ``database`` (it holds nothing)."""
    return database.with_name(database.name + ".lock")


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` (created if needed) for the block: one process at a time."""
    lock = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        with _locked(lock):
            yield
    finally:
        os.close(lock)


@contextmanager
def _locked(lock: int | None) -> Iterator[None]:
    if lock is None:
        yield
        return
    fcntl.flock(lock, fcntl.LOCK_EX)  # releases the GIL while it waits
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


class Store:
    """One connection to the audit database. Writers use ``begin``/``commit`` around each batch."""

    def __init__(self, conn: Connection, path: Path, lock: int | None = None) -> None:
        self.conn = conn
        self.path = path
        self._lock = lock  # a writer's open lock file (see transaction)

    @classmethod
    def open_writer(cls, path: Path, *, full_sync: bool) -> Store:
        """Open (creating the directory, database and schema if needed) for writing."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            conn = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except BaseException:
            os.close(lock)
            raise
        try:
            conn.execute(f"PRAGMA synchronous={'FULL' if full_sync else 'NORMAL'}")
            # workers starting together: switching to WAL answers "database is locked" at once,
            # without SQLite's busy handler, to all but one of them; the lock file orders them
            with _locked(lock):
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            os.close(lock)
            raise
        return cls(conn, path, lock)

    @classmethod
    def open_reader(cls, path: Path) -> Store:
        """Open an existing database without writing to it (a copy on read-only media included)."""
        if not path.is_file():
            raise StoreError(f"no audit log at {path}")
        try:
            return cls(_connect_reader(path, "mode=ro"), path)
        except sqlite3.Error:
            pass
        try:  # WAL needs a writable directory for its -shm file; a copy on read-only media has none
            return cls(_connect_reader(path, "mode=ro&immutable=1"), path)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot read the audit log: {exc}") from None

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction (taking the write lock at once); rolled back if the block raises.

        Writers of several processes (server workers) take the lock file first: a blocked flock
        wakes the moment the holder lets go, where SQLite's busy handler would sleep and poll
        (1, 2, 5, 10 ... 100 ms), which at 1,000 Checks/s on two workers made p99 30 ms.
        """
        with _locked(self._lock):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every query inside sees the same state of the log, however writers go on."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("ROLLBACK")

    # writing

    def head(self) -> Head:
        row = self.conn.execute("SELECT size, last_hash, frontier, checkpoint_size FROM head").fetchone()
        if row is None:
            raise CorruptError("head: the row is missing")
        size, last_hash, frontier, checkpoint_size = row
        _expect("head", "checkpoint_size", checkpoint_size, int)
        return Head(
            size, _hash("head", "last_hash", last_hash), _frontier("head", size, frontier), checkpoint_size
        )

    def move_head(self, expected: Head, head: Head) -> bool:
        """Set the head to ``head`` if it is still ``expected``; False (nothing changed) if not."""
        expected_key = (expected.size, expected.last_hash)
        moved = self.conn.execute(
            "UPDATE head SET size = ?, last_hash = ?, frontier = ?, checkpoint_size = ?"
            " WHERE size = ? AND last_hash = ?",
            (head.size, head.last_hash, head.frontier.to_bytes(), head.checkpoint_size, *expected_key),
        )
        return bool(moved.rowcount == 1)

    def taken(self, decision_ids: Sequence[str]) -> set[str]:
        """Those of ``decision_ids`` already in the log."""
        found: set[str] = set()
        for chunk in _chunks(decision_ids):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT decision_id FROM records WHERE decision_id IN ({marks})"
            found.update(row[0] for row in self.conn.execute(sql, chunk))
        return found

    def insert(self, records: Sequence[Record]) -> None:
        """Add ``records`` (their decision ids must be new), a few statements for the whole batch."""
        rows = [
            (r.seq, r.decision_id, r.time, r.outcome, r.ruleset, r.principal, r.body, r.hash) for r in records
        ]
        self._insert_rows("records (seq, decision_id, time, outcome, ruleset, principal, body, hash)", rows)
        self._insert_rows("record_rules (rule, seq)", [(rule, r.seq) for r in records for rule in r.rules])

    def _insert_rows(self, into: str, rows: Sequence[tuple[object, ...]]) -> None:
        # One multi-row INSERT per chunk: the GIL is released and re-taken once per statement, not
        # once per row, which matters while many request threads want it.
        for chunk in _chunks(rows):
            placeholders = "(" + ",".join("?" * len(chunk[0])) + ")"
            values = [value for row in chunk for value in row]
            self.conn.execute(f"INSERT INTO {into} VALUES {','.join([placeholders] * len(chunk))}", values)

    def insert_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.conn.execute(
            "INSERT INTO checkpoints (size, statement, signature, frontier) VALUES (?, ?, ?, ?)",
            (checkpoint.size, checkpoint.statement, checkpoint.signature, checkpoint.frontier),
        )

    def probe(self) -> None:
        """A durable write of PROBE_BYTES, to learn whether writing records works again."""
        self.conn.execute(
            "INSERT OR REPLACE INTO space_probe (id, data) VALUES (1, randomblob(?))", (PROBE_BYTES,)
        )

    def set_anchor(self, anchor: Anchor) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO anchor (id, size, head, frontier) VALUES (1, ?, ?, ?)",
            (anchor.size, anchor.head, anchor.frontier.to_bytes()),
        )

    def delete_through(self, seq: int) -> int:
        """Delete records 1..seq and the checkpoints before ``seq``; returns how many records went."""
        deleted = self.conn.execute("DELETE FROM records WHERE seq <= ?", (seq,)).rowcount
        self.conn.execute("DELETE FROM record_rules WHERE seq <= ?", (seq,))
        self.conn.execute("DELETE FROM checkpoints WHERE size < ?", (seq,))
        return int(deleted)

    # reading

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else _expect("meta", f"value of {key}", row[0], str)

    def set_meta_once(self, key: str, value: str) -> str:
        """Set ``key`` unless it is set; returns the stored value either way."""
        self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
        stored = self.meta(key)
        assert stored is not None
        return stored

    def anchor(self) -> Anchor:
        row = self.conn.execute("SELECT size, head, frontier FROM anchor").fetchone()
        if row is None:
            return Anchor(0, GENESIS_HASH, Frontier())
        size, head, frontier = row
        return Anchor(size, _hash("anchor", "head", head), _frontier("anchor", size, frontier))

    def last_checkpoint(self, above: int = 0, at_most: int | None = None) -> StoredCheckpoint | None:
        """The largest checkpoint with ``above`` < size <= ``at_most`` (no upper bound if None)."""
        row = self.conn.execute(
            "SELECT size, statement, signature, frontier FROM checkpoints WHERE size > ? AND size <= ?"
            " ORDER BY size DESC LIMIT 1",
            (above, at_most if at_most is not None else 2**63 - 1),
        ).fetchone()
        return None if row is None else _stored_checkpoint(row)

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, by size, as stored (parsing them is the caller's job)."""
        rows = self.conn.execute("SELECT size, statement, signature, frontier FROM checkpoints ORDER BY size")
        return [_stored_checkpoint(row) for row in rows]

    def records(self, filters: Filters | None = None) -> Iterator[Stored]:
        """Records in log order, selected by ``filters``."""
        where, params = _where(filters or Filters())
        limit = f" LIMIT {int(filters.limit)}" if filters and filters.limit else ""
        sql = f"SELECT {_COLUMNS} FROM records{where} ORDER BY seq{limit}"
        for row in self.conn.execute(sql, params):
            yield _stored(row)

    def find(self, decision_id: str) -> Stored | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM records WHERE decision_id = ?", (decision_id,)
        ).fetchone()
        return None if row is None else _stored(row)

    def record_hashes(self, first: int, last: int) -> list[tuple[int, str]]:
        """(seq, hash) of records first..last, in order."""
        rows = self.conn.execute(
            "SELECT seq, hash FROM records WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last)
        )
        return [(seq, _hash(f"record {seq}", "hash", digest, seq)) for seq, digest in rows]

    def rule_index(self) -> Iterator[tuple[int, tuple[str, ...]]]:
        """The rule index (what `query --rule` reads) by record, in seq order: (seq, its rules, sorted)."""
        rows = self.conn.execute("SELECT seq, rule FROM record_rules ORDER BY seq, rule")
        for seq, group in itertools.groupby(rows, key=lambda row: row[0]):
            _expect("record_rules", "seq", seq, int)
            yield (
                seq,
                tuple(_expect(f"record_rules of record {seq}", "rule", rule, str, seq) for _, rule in group),
            )

    def seq_of_body(self, seq: int) -> int | None:
        """The stored position of the record whose body says ``seq`` (a scan: for diagnosing only)."""
        row = self.conn.execute(
            "SELECT seq FROM records"
            " WHERE CASE WHEN json_valid(body) THEN json_extract(body, '$.seq') END = ? LIMIT 1",
            (seq,),
        ).fetchone()
        return None if row is None else int(row[0])

    def seq_at_or_before(self, time: str) -> int:
        """The last seq whose record time is before ``time`` (0 if none)."""
        row = self.conn.execute("SELECT max(seq) FROM records WHERE time < ?", (time,)).fetchone()
        return int(row[0] or 0)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint row as stored, before its statement is parsed."""

    size: int
    statement: str
    signature: str
    frontier: bytes

    def checkpoint(self) -> Checkpoint:
        return Checkpoint.parse(self.statement, self.signature, self.frontier)


def _connect_reader(path: Path, options: str) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?{options}"
    conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    conn.text_factory = _text
    try:
        conn.execute("SELECT count(*) FROM head").fetchone()
    except sqlite3.Error:
        conn.close()
        raise
    except UnicodeDecodeError:  # SQLite's message quotes a damaged schema, whose bytes need not be UTF-8
        conn.close()
        raise sqlite3.DatabaseError("malformed database schema (not UTF-8)") from None
    return conn


def _text(data: bytes) -> str | bytes:
    """Stored text as str; bytes that are not UTF-8 stay bytes, for the checks below to name."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


T = TypeVar("T")


def _expect(where: str, column: str, value: object, kind: type[T], seq: int = 0) -> T:
    """``value`` if it is a ``kind``; raises CorruptError naming ``where`` and ``column`` if not."""
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    raise CorruptError(f"{where}: column {column} holds {_shown(value)}, not {_KINDS[kind]}", seq)


def _shown(value: object) -> str:
    if isinstance(value, bytes):  # a blob, or text that is not UTF-8 (see _text)
        return f"binary data ({len(value)} byte(s))"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return f"the {type(value).__name__} {value!r}"


def _hash(where: str, column: str, value: object, seq: int = 0) -> str:
    text = _expect(where, column, value, str, seq)
    if not _HASH.fullmatch(text):
        raise CorruptError(f"{where}: column {column} holds {_shown(text)}, not a SHA-256 in hex", seq)
    return text


def _frontier(where: str, size: object, blob: object) -> Frontier:
    count = _expect(where, "size", size, int)
    want = HASH_BYTES * max(count, 0).bit_count()
    if count < 0 or not isinstance(blob, bytes) or len(blob) != want:
        shown = f"{len(blob)} byte(s)" if isinstance(blob, bytes) else _shown(blob)
        raise CorruptError(
            f"{where}: column frontier holds {shown}, not the {want} bytes of a tree of {count}"
        )
    return Frontier.from_bytes(count, blob)


def _stored(row: Sequence[object]) -> Stored:
    seq = _expect("records", "seq", row[0], int)
    where = f"record {seq}"
    decision_id, time, outcome, ruleset, principal, body = (
        _expect(where, column, value, str, seq) for column, value in zip(_TEXT_COLUMNS, row[1:7], strict=True)
    )
    return Stored(
        seq, decision_id, time, outcome, ruleset, principal, body, _hash(where, "hash", row[7], seq)
    )


def _stored_checkpoint(row: Sequence[object]) -> StoredCheckpoint:
    size = _expect("checkpoints", "size", row[0], int)
    where = f"checkpoint {size}"
    statement, signature = (
        _expect(where, column, value, str)
        for column, value in zip(("statement", "signature"), row[1:3], strict=True)
    )
    return StoredCheckpoint(size, statement, signature, _expect(where, "frontier", row[3], bytes))


_KINDS: dict[type, str] = {int: "an integer", str: "text", bytes: "a blob"}
_COLUMNS = "seq, decision_id, time, outcome, ruleset, principal, body, hash"
_TEXT_COLUMNS = ("decision_id", "time", "outcome", "ruleset", "principal", "body")
_MAX_ROWS = 64  # rows per statement: 64 x 8 values stays under SQLite's oldest limit of 999 variables


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in runs of power-of-two lengths up to _MAX_ROWS, so that few distinct statements exist."""
    start = 0
    while start < len(items):
        size = min(1 << ((len(items) - start).bit_length() - 1), _MAX_ROWS)
        yield items[start : start + size]
        start += size


def _where(filters: Filters) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for column, op, value in (
        ("time", ">=", filters.since),
        ("time", "<", filters.until),
        ("outcome", "=", filters.outcome),
        ("ruleset", "=", filters.ruleset),
        ("principal", "=", filters.principal),
    ):
        if value:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    if filters.rule:
        clauses.append("seq IN (SELECT seq FROM record_rules WHERE rule = ?)")
        params.append(filters.rule)
    if filters.after_seq:
        clauses.append("seq > ?")
        params.append(filters.after_seq)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
