"""The audit store on PostgreSQL: the SQLite store's tables and queries, shared by every replica."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.audit.store import PROBE_BYTES, Anchor, DuplicateRow, Store, StoreError
from engine.store.postgres import Connection, open_checked, shown


class PgStore(Store):
    """One connection to the audit tables of a PostgreSQL database (schema: engine/store/postgres.py).

    Write transactions of all replicas take one advisory lock in turn, as SQLite's writers take the
    lock file, so the chain is placed after the head as it stands, whichever replica writes."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn, Path(shown(conn.url)))
        self._pg = conn

    @classmethod
    def connect(cls, url: str) -> PgStore:
        """Open ``url``; StoreError if it cannot be reached or its schema is not the known one."""
        return cls(open_checked(url, StoreError, DuplicateRow))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._pg.transaction():
            yield

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self._pg.transaction(write=False, snapshot=True):
            yield

    def set_meta_once(self, key: str, value: str) -> str:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, value))
        stored = self.meta(key)
        assert stored is not None
        return stored

    def probe(self) -> None:
        self.conn.execute(
            "INSERT INTO space_probe (id, data) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (os.urandom(PROBE_BYTES),),
        )

    def set_anchor(self, anchor: Anchor) -> None:
        self.conn.execute(
            "INSERT INTO anchor (id, size, head, frontier) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE"
            " SET size = excluded.size, head = excluded.head, frontier = excluded.frontier",
            (anchor.size, anchor.head, anchor.frontier.to_bytes()),
        )

    def seq_of_body(self, seq: int) -> int | None:
        row = self.conn.execute(
            "SELECT seq FROM records WHERE substring(body from '\"seq\":([0-9]+)[,}]') = ? LIMIT 1",
            (str(seq),),
        ).fetchone()
        return None if row is None else int(row[0])
