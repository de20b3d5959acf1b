"""AuditLog: the one object a server holds to record every decision durably (see engine/audit/__init__.py)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from engine.audit.chain import Chain
from engine.audit.config import AuditConfig
from engine.audit.errors import AuditError, AuditUnavailable
from engine.audit.journal import Journal, journal_dir, recover
from engine.audit.keys import Digester, load_or_create_digester, load_or_create_signer, public_key_path
from engine.audit.pg_store import PgStore
from engine.audit.record import Entry, Record, build_approval_entry, build_entry
from engine.audit.store import Store, db_path
from engine.audit.witness import Witness
from engine.audit.writer import HealthListener, Writer, WriterStats
from engine.runtime.decision import Decision
from engine.runtime.excerpts import Excerpt
from engine.runtime.ids import new_id
from engine.runtime.request import Request
from engine.store.postgres import shown

AUDIT_DIR = "audit"


@dataclass(frozen=True, slots=True)
class AuditPaths:
    """Where the audit log keeps its files, by default all under ``<data_dir>/audit/``."""

    database: Path
    signing_key: Path
    hmac_key: Path

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str], config: AuditConfig | None = None) -> AuditPaths:
        config = config or AuditConfig()
        base = Path(data_dir) / AUDIT_DIR
        return cls(
            database=db_path(base),
            signing_key=Path(config.signing_key_path) if config.signing_key_path else base / "signing.key",
            hmac_key=Path(config.hmac_key_path) if config.hmac_key_path else base / "hmac.key",
        )

    @property
    def public_key(self) -> Path:
        return public_key_path(self.signing_key)

    @property
    def journal(self) -> Path:
        """The folder of the journal files (durability ``journal``)."""
        return journal_dir(self.database.parent)


class AuditLog:
    """Every decision's record, chained, group-committed and checkpointed. Thread-safe."""

    def __init__(
        self,
        writer: Writer,
        digester: Digester,
        paths: AuditPaths,
        config: AuditConfig,
        witness: Witness | None = None,
        *,
        journal: Journal | None = None,
        store_url: str = "",
    ) -> None:
        self._store_url = store_url
        self._writer = writer
        self._journal = journal
        self._witness = witness
        self._digester = digester
        self.paths = paths
        self.config = config

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        config: AuditConfig | None = None,
        *,
        on_health: HealthListener | None = None,
        store_url: str = "",
    ) -> AuditLog:
        """Open the log in ``data_dir`` (creating the database and keys on first use) and start its writer.

        ``on_health(False)`` is called (from the writer thread) when writing starts failing and
        ``on_health(True)`` when it works again. Each checkpoint signed also goes to the witness that
        ``config`` names, if any. Records that a process which died left in its journal, and that the
        store lacks, are added first, in order. With ``store_url`` (PostgreSQL: engine/audit/pg_store.py)
        the records go there, shared with every replica, and ``data_dir`` holds the keys and journal.
        Raises AuditUnavailable if the log cannot be opened.
        """
        config = config or AuditConfig()
        paths = AuditPaths.of(data_dir, config)
        full_sync = config.durability != "async"  # journal: a commit lets the journal go, so it is fsynced

        def connect() -> Store:
            if store_url:
                return PgStore.connect(store_url)
            return Store.open_writer(paths.database, full_sync=full_sync)

        where = shown(store_url) if store_url else paths.database.parent
        try:
            signer = load_or_create_signer(paths.signing_key)
            digester = load_or_create_digester(paths.hmac_key)
            chain = Chain(signer, _log_id(connect), config.checkpoint_every_records)
            _recover(paths, connect, chain)
            journal = Journal(paths.journal) if config.durability == "journal" else None
        except (OSError, sqlite3.Error, AuditError) as exc:
            raise AuditUnavailable(f"cannot open the audit log in {where}: {exc}") from None
        witness = Witness.start(config)
        writer = Writer(
            connect,
            chain,
            config,
            on_health,
            witness.push if witness else None,
            journal=journal,
        )
        return cls(writer, digester, paths, config, witness, journal=journal, store_url=store_url)

    def reader(self) -> Store:
        """A read-only connection to the records this log has written (close it when done); raises
        StoreError when the store cannot be opened."""
        if self._store_url:
            return PgStore.connect(self._store_url)
        return Store.open_reader(self.paths.database)

    @property
    def healthy(self) -> bool:
        """False while records cannot be written (the server should report NOT_SERVING)."""
        return self._writer.healthy

    @property
    def stats(self) -> WriterStats:
        return self._writer.stats

    @property
    def pending(self) -> int:
        """Records appended and not yet committed."""
        return self._writer.pending

    def digest(self, data: bytes) -> str:
        """HMAC-SHA-256 (hex) of ``data`` under this log's content key, as records digest content."""
        return self._digester.digest(data)

    def append(
        self,
        decision: Decision,
        request: Request,
        decision_id: str,
        *,
        at: datetime | None = None,
        excerpt: Excerpt | None = None,
        rollout: Mapping[str, Any] | None = None,
    ) -> Record | None:
        """Record ``decision`` on ``request`` under ``decision_id`` (the id the response will carry),
        with ``excerpt`` (already masked: engine.runtime.excerpts) when the ruleset asks for excerpts.

        sync durability: returns the sealed record once it is committed and fsynced. async: returns
        None at once. journal: returns None once the record is in the journal (one write()). Raises
        AuditUnavailable when the record cannot be made durable (fail closed), DuplicateDecision
        when ``decision_id`` is already in the log.
        """
        entry = build_entry(
            decision, request, decision_id, self._digester, at, excerpt=excerpt, rollout=rollout
        )
        return self._writer.submit(entry)

    def submit(self, entry: Entry) -> Record | None:
        """Record an entry built elsewhere (engine/audit/events.py); returns and raises as ``append``."""
        return self._writer.submit(entry)

    def append_approval(
        self, event: str, approval: Mapping[str, Any], *, actor: str, comment: str = "", decision_id: str = ""
    ) -> Record | None:
        """Record one approval transition (see engine/audit/record.py) in the same chain as decisions.

        Returns and raises as ``append`` does; the record gets a fresh id of its own.
        """
        entry = build_approval_entry(
            new_id(), event, approval, actor=actor, comment=comment, decision_id=decision_id
        )
        return self._writer.submit(entry)

    def close(self) -> None:
        """Write what is queued, sign a final checkpoint, hand it to the witness, release the database.
        Idempotent."""
        self._writer.close()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._witness is not None:
            self._witness.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _recover(paths: AuditPaths, connect: Callable[[], Store], chain: Chain) -> None:
    """Add what dead processes' journals hold and the store lacks (engine/audit/journal.py)."""
    if not paths.journal.is_dir():
        return
    store = connect()
    try:
        recover(paths.journal, store, chain)
    finally:
        store.close()


def _log_id(connect: Callable[[], Store]) -> str:
    """Create the database if needed and return its log id (a UUIDv7 chosen when it was created)."""
    store = connect()
    try:
        with store.transaction():
            return store.set_meta_once("log_id", new_id())
    finally:
        store.close()
