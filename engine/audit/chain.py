"""The chain: places records after the log's head, grows the Merkle tree, signs checkpoints."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from engine.audit.checkpoint import Checkpoint, sign_checkpoint
from engine.audit.errors import AuditError, DuplicateDecision
from engine.audit.keys import Signer
from engine.audit.merkle import Frontier, leaf_hash
from engine.audit.record import Entry, Record, seal
from engine.audit.store import Head, Store


class _Stale(Exception):
    """The head this process last wrote is no longer the log's: another writer has appended since."""


Results = list[Record | AuditError]


class Chain:
    """Appends to the log stored in a database. Several processes (server workers) may share one log:

    SQLite's write lock orders their batches, and each batch is placed after the head as it stands
    inside its transaction, so the chain has neither gaps nor forks whatever fails in between. A
    process remembers the head it last wrote and appends after it without reading it back; when
    another writer has moved the head, the insert or the head update finds out, and the batch is
    placed again after the head read from the database.
    """

    def __init__(self, signer: Signer, log_id: str, checkpoint_every_records: int) -> None:
        self.signer = signer
        self.log_id = log_id
        self.every_records = checkpoint_every_records
        self._head: Head | None = None  # the head after this process's last committed transaction

    def append(self, store: Store, entries: Sequence[Entry]) -> tuple[Results, Checkpoint | None]:
        """Seal and store ``entries`` in one transaction; sign a checkpoint if one is due."""
        head = self._head
        self._head = None  # until this transaction has committed
        if head is not None:
            try:
                with store.transaction():
                    results, checkpoint, self._head = self._place(store, head, entries, set())
                return results, checkpoint
            except _Stale:
                pass
        with store.transaction():
            head = store.head()
            taken = store.taken([entry.decision_id for entry in entries])
            results, checkpoint, self._head = self._place(store, head, entries, taken)
        return results, checkpoint

    def _place(
        self, store: Store, head: Head, entries: Sequence[Entry], taken: set[str]
    ) -> tuple[Results, Checkpoint | None, Head]:
        """Seal ``entries`` after ``head`` and write them; raises _Stale when ``head`` is not current."""
        frontier, size, last = head.frontier.copy(), head.size, head.last_hash
        results: Results = []
        for entry in entries:
            if entry.decision_id in taken:
                results.append(
                    DuplicateDecision(f"decision id {entry.decision_id} is already in the audit log")
                )
                continue
            taken.add(entry.decision_id)
            record = seal(entry, size + 1, last)
            frontier.append(leaf_hash(bytes.fromhex(record.hash)))
            size, last = record.seq, record.hash
            results.append(record)
        try:
            store.insert([r for r in results if isinstance(r, Record)])
        except sqlite3.IntegrityError:  # a seq or decision id already there: the head has moved
            raise _Stale from None
        checkpoint = None
        if size - head.checkpoint_size >= self.every_records:
            checkpoint = self._sign(store, frontier, last)
        signed = checkpoint.size if checkpoint else head.checkpoint_size
        after = Head(size, last, frontier, signed)
        if not store.move_head(head, after):
            raise _Stale
        return results, checkpoint, after

    def checkpoint(self, store: Store) -> Checkpoint | None:
        """Sign the head now if records were added since the last checkpoint."""
        self._head = None
        with store.transaction():
            head = store.head()
            if head.size == head.checkpoint_size:
                return None
            checkpoint = self._sign(store, head.frontier, head.last_hash)
            after = Head(head.size, head.last_hash, head.frontier, head.size)
            store.move_head(head, after)
        self._head = after
        return checkpoint

    def _sign(self, store: Store, frontier: Frontier, last_hash: str) -> Checkpoint:
        checkpoint = sign_checkpoint(self.signer, self.log_id, frontier, last_hash, datetime.now(UTC))
        store.insert_checkpoint(checkpoint)
        return checkpoint
