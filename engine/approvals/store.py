"""The approval store: one SQLite database (WAL) in the data directory, shared by every server process."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import astuple, dataclass, fields, replace
from pathlib import Path

from engine.approvals.model import AlreadyResolved, Approval, ApprovalError, ApprovalNotFound, Change, State
from engine.audit.store import Connection, file_lock, lock_path
from engine.runtime.request import quoted

DB_NAME = "approvals.db"
_BUSY_TIMEOUT_S = 10.0
_COLUMNS = tuple(f.name for f in fields(Approval))
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM approvals"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS approvals ({", ".join(f"{c} NOT NULL" for c in _COLUMNS)}, PRIMARY KEY (id));
CREATE INDEX IF NOT EXISTS approvals_binding ON approvals (binding, ruleset, rule, state);
CREATE INDEX IF NOT EXISTS approvals_queue ON approvals (queue, state, created_us);
CREATE INDEX IF NOT EXISTS approvals_deadline ON approvals (state, deadline_us);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    approval_id TEXT NOT NULL,
    event TEXT NOT NULL
);
"""

# Called inside the transaction that makes a change, before it commits: raising undoes the change.
Recorder = Callable[[str, Approval], None]


class ApprovalUnavailable(ApprovalError):
    """The approval database cannot be read or written; the message names the file."""


@dataclass(frozen=True, slots=True)
class Query:
    """What List selects by; empty fields select everything. Newest first."""

    queue: str = ""
    state: State | None = None
    created_before_us: int = 0  # 0: any age
    limit: int = 1000


class ApprovalStore:
    """Approvals and their changes. Thread-safe; several processes may open the same file."""

    def __init__(self, conn: Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path
        self.lock_path = lock_path(path)

    @classmethod
    def open(cls, data_dir: str | Path) -> ApprovalStore:
        """Open ``<data_dir>/approvals.db``, creating it on first use."""
        path = Path(data_dir) / DB_NAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=FULL")
            with file_lock(lock_path(path)):  # workers starting together
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ApprovalUnavailable(f"cannot open the approvals database {path}: {exc}") from None
        return cls(conn, path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise ApprovalUnavailable(f"{self.path}: {exc}") from None

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One write transaction, taking the write lock at once: compare-and-set across processes.

        Server workers take the lock file first, as the audit store does (engine/audit/store.py):
        a blocked flock wakes when the holder lets go, where SQLite's busy handler sleeps and polls.
        """
        with self._reading() as conn, file_lock(self.lock_path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # reading

    def get(self, approval_id: str) -> Approval:
        with self._reading() as conn:
            return _get(conn, approval_id)

    def query(self, query: Query) -> list[Approval]:
        where, args = _where(query)
        sql = f"{_SELECT}{where} ORDER BY created_us DESC, id DESC LIMIT ?"
        with self._reading() as conn:
            return [_approval(row) for row in conn.execute(sql, [*args, query.limit])]

    def latest(self, binding: str, ruleset: str, rule: str) -> Approval | None:
        """The newest approval of ``rule`` in ``ruleset`` for the request with ``binding``, if any."""
        sql = f"{_SELECT} WHERE binding = ? AND ruleset = ? AND rule = ? ORDER BY created_us DESC, id DESC"
        with self._reading() as conn:
            row = conn.execute(sql, (binding, ruleset, rule)).fetchone()
            return None if row is None else _approval(row)

    def last_change(self) -> int:
        with self._reading() as conn:
            row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
            return int(row[0])

    def changes_after(self, seq: int) -> list[Change]:
        """Every change after ``seq``, oldest first, each with the approval as it is now."""
        sql = "SELECT seq, approval_id, event FROM changes WHERE seq > ? ORDER BY seq"
        with self._reading() as conn:
            return [
                Change(s, event, _get(conn, aid)) for s, aid, event in conn.execute(sql, (seq,)).fetchall()
            ]

    def any_due(self, now_us: int) -> bool:
        sql = "SELECT 1 FROM approvals WHERE state = ? AND deadline_us <= ? LIMIT 1"
        with self._reading() as conn:
            return conn.execute(sql, (State.PENDING.value, now_us)).fetchone() is not None

    def pending_by_queue(self, now_us: int) -> dict[str, int]:
        """How many approvals are pending, and not yet past their deadline, in each queue."""
        sql = "SELECT queue, COUNT(*) FROM approvals WHERE state = ? AND deadline_us > ? GROUP BY queue"
        with self._reading() as conn:
            return {str(q): int(n) for q, n in conn.execute(sql, (State.PENDING.value, now_us))}

    # writing

    def open_or_join(self, candidate: Approval, record: Recorder) -> tuple[Approval, bool]:
        """The pending approval for the same request, ruleset and rule, or ``candidate`` stored as a
        new one (True). Pending ones already past their deadline are expired first."""
        sql = f"{_SELECT} WHERE binding = ? AND ruleset = ? AND rule = ? AND state = ? ORDER BY created_us"
        args = (candidate.binding, candidate.ruleset, candidate.rule, State.PENDING.value)
        with self._writing() as conn:
            for existing in [_approval(row) for row in conn.execute(sql, args)]:
                if not existing.due(candidate.created_us):
                    return existing, False
                _change(conn, _expired(existing, candidate.created_us), "expired", record)
            conn.execute(f"INSERT INTO approvals VALUES ({', '.join('?' * len(_COLUMNS))})", _row(candidate))
            _change(conn, candidate, "opened", record, insert=True)
            return candidate, True

    def resolve(self, done: Approval, now_us: int, record: Recorder) -> Approval:
        """Store ``done`` (its state, resolver and comment) over the pending approval with its id
        (compare-and-set). Raises AlreadyResolved when it is not pending (or is past its deadline:
        it is expired then), ApprovalNotFound for an unknown id."""
        with self._writing() as conn:
            current = _get(conn, done.id)
            if current.due(now_us):
                current = _expired(current, now_us)
                _change(conn, current, "expired", record)
            elif current.pending:
                done = replace(current, state=done.state, resolver=done.resolver, comment=done.comment)
                done = replace(done, resolved_us=now_us)
                _change(conn, done, done.state.value, record)
                return done
        raise AlreadyResolved(current)

    def prune(self, before_us: int) -> int:
        """Delete the approvals that are no longer pending and whose deadline is before ``before_us``,
        with their changes; returns how many. (Expire the due ones first: pending ones are kept.)"""
        where = "WHERE state != ? AND deadline_us < ?"
        args = (State.PENDING.value, before_us)
        with self._writing() as conn:
            conn.execute(f"DELETE FROM changes WHERE approval_id IN (SELECT id FROM approvals {where})", args)
            return int(conn.execute(f"DELETE FROM approvals {where}", args).rowcount)

    def expire_due(self, now_us: int, record: Recorder) -> list[Approval]:
        """Expire every pending approval past its deadline; returns them."""
        if not self.any_due(now_us):
            return []
        sql = f"{_SELECT} WHERE state = ? AND deadline_us <= ?"
        with self._writing() as conn:
            due = [
                _expired(_approval(row), now_us) for row in conn.execute(sql, (State.PENDING.value, now_us))
            ]
            for approval in due:
                _change(conn, approval, "expired", record)
            return due

    def use(self, approval_id: str, record: Recorder) -> Approval | None:
        """Use up an approved single-use approval (compare-and-set); None when it was already used."""
        with self._writing() as conn:
            current = _get(conn, approval_id)
            if current.used or current.state is not State.APPROVED:
                return None
            used = replace(current, used=True)
            _change(conn, used, "used", record)
            return used


def _get(conn: Connection, approval_id: str) -> Approval:
    row = conn.execute(f"{_SELECT} WHERE id = ?", (approval_id,)).fetchone()
    if row is None:
        raise ApprovalNotFound(f"no approval with id {quoted(approval_id)}")
    return _approval(row)


def _change(
    conn: Connection, approval: Approval, event: str, record: Recorder, *, insert: bool = False
) -> None:
    if not insert:
        assignments = ", ".join(f"{c} = ?" for c in _COLUMNS[1:])
        conn.execute(f"UPDATE approvals SET {assignments} WHERE id = ?", (*_row(approval)[1:], approval.id))
    conn.execute("INSERT INTO changes (approval_id, event) VALUES (?, ?)", (approval.id, event))
    record(event, approval)


def _expired(approval: Approval, now_us: int) -> Approval:
    return replace(
        approval, state=State.EXPIRED, resolver="palisade", comment="deadline passed", resolved_us=now_us
    )


def _row(approval: Approval) -> tuple[object, ...]:
    values = astuple(approval)
    return tuple(v.value if isinstance(v, State) else v for v in values)


def _approval(row: tuple[object, ...]) -> Approval:
    data = dict(zip(_COLUMNS, row, strict=True))
    data |= {
        "state": State(str(data["state"])),
        "single_use": bool(data["single_use"]),
        "used": bool(data["used"]),
    }
    return Approval(**data)  # type: ignore[arg-type]


def _where(query: Query) -> tuple[str, list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    for clause, value in (
        ("queue = ?", query.queue),
        ("state = ?", query.state.value if query.state else ""),
        ("created_us <= ?", query.created_before_us),
    ):
        if value:
            clauses.append(clause)
            args.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args
