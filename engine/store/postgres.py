"""PostgreSQL for the shared stores: connections, the schema and its migrations, one version table."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import errors

SCHEMA_VERSION = 1  # the schema this code reads and writes; `palisade store migrate` brings a database to it
CONNECT_TIMEOUT_S = 10
# pg_advisory_xact_lock keys: the write transactions of every replica take turns, per store. Two keys,
# as SQLite has two files: an approval change appends its audit record while it holds its own turn.
AUDIT_LOCK = 0x70616C61
APPROVALS_LOCK = 0x70616C70
# Each migration: the statements that take the schema from the version before to its number.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE head (id INTEGER PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL,"
        " last_hash TEXT NOT NULL, frontier BYTEA NOT NULL, checkpoint_size BIGINT NOT NULL)",
        "INSERT INTO head VALUES (1, 0, '" + "0" * 64 + "', ''::bytea, 0)",
        "CREATE TABLE records (seq BIGINT PRIMARY KEY, decision_id TEXT NOT NULL UNIQUE,"
        " time TEXT NOT NULL, outcome TEXT NOT NULL, ruleset TEXT NOT NULL, principal TEXT NOT NULL,"
        " body TEXT NOT NULL, hash TEXT NOT NULL)",
        "CREATE INDEX records_time ON records (time)",
        "CREATE INDEX records_outcome ON records (outcome)",
        "CREATE INDEX records_ruleset ON records (ruleset)",
        "CREATE INDEX records_principal ON records (principal)",
        "CREATE TABLE record_rules (rule TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (rule, seq))",
        "CREATE TABLE checkpoints (size BIGINT PRIMARY KEY, statement TEXT NOT NULL,"
        " signature TEXT NOT NULL, frontier BYTEA NOT NULL)",
        "CREATE TABLE anchor (id INTEGER PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL,"
        " head TEXT NOT NULL, frontier BYTEA NOT NULL)",
        "CREATE TABLE space_probe (id INTEGER PRIMARY KEY CHECK (id = 1), data BYTEA NOT NULL)",
        "CREATE TABLE approvals (id TEXT PRIMARY KEY, queue TEXT NOT NULL, state TEXT NOT NULL,"
        " ruleset TEXT NOT NULL, version TEXT NOT NULL, rule TEXT NOT NULL, reason TEXT NOT NULL,"
        " binding TEXT NOT NULL, stage TEXT NOT NULL, principal_id TEXT NOT NULL, tenant TEXT NOT NULL,"
        " tool TEXT NOT NULL, created_us BIGINT NOT NULL, deadline_us BIGINT NOT NULL,"
        " on_expiry TEXT NOT NULL, single_use BOOLEAN NOT NULL, used BOOLEAN NOT NULL,"
        " resolver TEXT NOT NULL, comment TEXT NOT NULL, resolved_us BIGINT NOT NULL)",
        "CREATE INDEX approvals_binding ON approvals (binding, ruleset, rule, state)",
        "CREATE INDEX approvals_queue ON approvals (queue, state, created_us)",
        "CREATE INDEX approvals_deadline ON approvals (state, deadline_us)",
        "CREATE TABLE changes (seq BIGSERIAL PRIMARY KEY, approval_id TEXT NOT NULL, event TEXT NOT NULL)",
    ),
}
_PLACEHOLDER = re.compile(r"\?")
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


class PostgresError(Exception):
    """PostgreSQL cannot be reached, or its schema is not one this code knows; the message says which."""


class Duplicate(PostgresError):
    """A row with the same key is already stored (a unique constraint refused the statement)."""


def is_url(value: str) -> bool:
    """Whether ``value`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return value.startswith(("postgresql://", "postgres://"))


def shown(url: str) -> str:
    """``url`` without its password, for messages."""
    return _PASSWORD.sub(r"\1***@", url)


class Connection:
    """One autocommit connection that takes the stores' SQL (``?`` placeholders). A failing statement
    raises ``duplicate`` for a unique key already stored, else ``error`` (the caller's own errors)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        url: str,
        error: type[Exception] = PostgresError,
        duplicate: type[Exception] = Duplicate,
    ) -> None:
        self.raw = conn
        self.url = url
        self.error = error
        self._duplicate = duplicate

    @classmethod
    def open(
        cls, url: str, error: type[Exception] = PostgresError, duplicate: type[Exception] = Duplicate
    ) -> Connection:
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise error(f"{shown(url)}: cannot connect: {exc}") from None
        return cls(conn, url, error, duplicate)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        try:
            return self.raw.execute(_PLACEHOLDER.sub("%s", sql).encode(), list(parameters))
        except errors.UniqueViolation as exc:
            raise self._duplicate(f"{shown(self.url)}: {exc}") from None
        except psycopg.Error as exc:
            raise self.error(f"{shown(self.url)}: {exc}") from None

    def close(self) -> None:
        self.raw.close()

    @contextmanager
    def transaction(
        self, lock: int = AUDIT_LOCK, *, write: bool = True, snapshot: bool = False
    ) -> Iterator[None]:
        """A transaction; a write one first waits for the turn that every replica's writers of the
        store that ``lock`` names share."""
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" if snapshot else "BEGIN")
        try:
            if write:
                self.execute("SELECT pg_advisory_xact_lock(?)", (lock,))
            yield
        except BaseException:
            with suppress(psycopg.Error):
                self.raw.execute("ROLLBACK")
            raise
        self.execute("COMMIT")


def schema_version(conn: Connection) -> int:
    """The version the database's schema is at (0: none)."""
    row = conn.execute("SELECT to_regclass('palisade_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    found = conn.execute("SELECT max(version) FROM palisade_schema").fetchone()
    return int(found[0] or 0) if found else 0


def check_schema(conn: Connection) -> None:
    """Raise PostgresError unless the schema is exactly the one this code knows."""
    version = schema_version(conn)
    if version == SCHEMA_VERSION:
        return
    where = shown(conn.url)
    if version > SCHEMA_VERSION:
        raise conn.error(
            f"{where}: schema version {version} is newer than this Palisade knows ({SCHEMA_VERSION}); "
            "upgrade Palisade"
        )
    raise conn.error(
        f"{where}: schema version {version}, this Palisade needs {SCHEMA_VERSION}: "
        "run `palisade store migrate`"
    )


def migrate(url: str) -> tuple[int, int]:
    """Bring the database at ``url`` to SCHEMA_VERSION, each migration in its own transaction (one
    migrator at a time); returns the versions before and after. Refuses a schema newer than known."""
    conn = Connection.open(url)
    try:
        with conn.transaction():
            conn.execute(
                "CREATE TABLE IF NOT EXISTS palisade_schema (version INTEGER PRIMARY KEY,"
                " applied TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
        before = schema_version(conn)
        if before > SCHEMA_VERSION:
            check_schema(conn)
        for version in range(before + 1, SCHEMA_VERSION + 1):
            with conn.transaction():
                if schema_version(conn) >= version:  # another migrator was first
                    continue
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute("INSERT INTO palisade_schema (version) VALUES (?)", (version,))
        return before, schema_version(conn)
    finally:
        conn.close()


def open_checked(
    url: str, error: type[Exception] = PostgresError, duplicate: type[Exception] = Duplicate
) -> Connection:
    """A connection to ``url`` whose schema is the known one; ``error`` if not (or unreachable)."""
    conn = Connection.open(url, error, duplicate)
    try:
        check_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn
