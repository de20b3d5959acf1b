"""The approval store on PostgreSQL: shared by every replica, so any of them can open, answer and use one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from engine.approvals.store import ApprovalStore, ApprovalUnavailable
from engine.audit.store import Connection
from engine.store.postgres import APPROVALS_LOCK, CONNECT_TIMEOUT_S, check_schema, shown
from engine.store.postgres import Connection as PgConnection

POOL_SIZE = 4  # connections per process: request threads wait for one at most CONNECT_TIMEOUT_S


class PgApprovalStore(ApprovalStore):
    """Approvals in PostgreSQL (schema: engine/store/postgres.py), through a connection pool.

    Each write transaction takes the advisory lock all replicas' writers share, so the
    compare-and-set of resolve and use holds across replicas as SQLite's BEGIN IMMEDIATE does in one."""

    def __init__(self, pool: ConnectionPool[psycopg.Connection[tuple[object, ...]]], url: str) -> None:
        self._pool = pool
        self._url = url
        self.path = Path(shown(url))
        self.lock_path = self.path

    @classmethod
    def connect(cls, url: str) -> PgApprovalStore:
        """A pool on ``url``; ApprovalUnavailable if it cannot be reached or its schema is not known."""
        pool: ConnectionPool[psycopg.Connection[tuple[object, ...]]] = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True},
            timeout=CONNECT_TIMEOUT_S,
            open=False,
        )
        store = cls(pool, url)
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
            with store._connection() as conn:
                check_schema(conn)
        except BaseException as exc:
            pool.close()
            if isinstance(exc, PoolTimeout):
                raise ApprovalUnavailable(f"{shown(url)}: cannot connect: {exc}") from None
            raise
        return store

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _connection(self) -> Iterator[PgConnection]:
        try:
            with self._pool.connection() as raw:
                yield PgConnection(raw, self._url, ApprovalUnavailable, ApprovalUnavailable)
        except (PoolTimeout, psycopg.Error) as exc:
            raise ApprovalUnavailable(f"{shown(self._url)}: {exc}") from None

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._connection() as conn:
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._connection() as conn, conn.transaction(APPROVALS_LOCK):
            yield conn
