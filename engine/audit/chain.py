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
from engine.audit.store import DuplicateRow, Head, Store, StoreError


class _Duplicate(Exception):
    """A batch placed without looking up its decision ids met one already stored (rolled back)."""


Results = list[Record | AuditError]
Placed = tuple[Results, Checkpoint | None, Head]


class Chain:
    """Appends to the log stored in a database. Several processes (server workers) may share one log:

    their write transactions are ordered (engine/audit/store.py), and each batch is placed after
    the head as it stands inside its transaction, so the chain has neither gaps nor forks whatever
    fails in between. A process remembers the head it last wrote and appends after it without
    reading it back: the head update comes first and changes nothing when another writer has moved
    the head, and the batch is then placed after the head read in the same transaction.
    """

    def __init__(self, signer: Signer, log_id: str, checkpoint_every_records: int) -> None:
        self.signer = signer
        self.log_id = log_id
        self.every_records = checkpoint_every_records
        self._head: Head | None = None  # the head after this process's last committed transaction

    def append(self, store: Store, entries: Sequence[Entry]) -> tuple[Results, Checkpoint | None]:
        """Seal and store ``entries`` in one transaction; sign a checkpoint if one is due."""
        remembered, self._head = self._head, None  # forgotten until this transaction has committed
        if remembered is not None:
            try:
                with store.transaction():
                    placed = self._place(store, remembered, entries, set())
                    if placed is None:  # another writer moved the head: read it here, still locked
                        placed = self._place_after_stored(store, entries)
                results, checkpoint, self._head = placed
                return results, checkpoint
            except _Duplicate:  # rolled back; the slow path below says which ids were taken
                pass
        with store.transaction():
            results, checkpoint, self._head = self._place_after_stored(store, entries)
        return results, checkpoint

    def _place_after_stored(self, store: Store, entries: Sequence[Entry]) -> Placed:
        head = store.head()
        taken = store.taken([entry.decision_id for entry in entries])
        placed = self._place(store, head, entries, taken)
        if placed is None:
            raise StoreError(f"{store.path}: the head changed inside a write transaction")
        return placed

    def _place(self, store: Store, head: Head, entries: Sequence[Entry], taken: set[str]) -> Placed | None:
        """Seal ``entries`` after ``head`` and write them. None (nothing written) when ``head`` is not
        the stored head; raises _Duplicate when a decision id not in ``taken`` is already stored."""
        frontier, size, last = head.frontier.copy(), head.size, head.last_hash
        results: Results = []
        for entry in entries:
            if entry.decision_id in taken:
                message = f"decision id {entry.decision_id} is already in the audit log"
                results.append(DuplicateDecision(message))
                continue
            taken.add(entry.decision_id)
            record = seal(entry, size + 1, last)
            frontier.append(leaf_hash(bytes.fromhex(record.hash)))
            size, last = record.seq, record.hash
            results.append(record)
        due = size - head.checkpoint_size >= self.every_records
        checkpoint = (
            sign_checkpoint(self.signer, self.log_id, frontier, last, datetime.now(UTC)) if due else None
        )
        after = Head(size, last, frontier, checkpoint.size if checkpoint else head.checkpoint_size)
        if not store.move_head(head, after):
            return None
        try:
            store.insert([r for r in results if isinstance(r, Record)])
        except (sqlite3.IntegrityError, DuplicateRow):  # a decision id already stored (the head was current)
            raise _Duplicate from None
        if checkpoint is not None:
            store.insert_checkpoint(checkpoint)
        return results, checkpoint, after

    def checkpoint(self, store: Store) -> Checkpoint | None:
        """Sign the head now if records were added since the last checkpoint."""
        self._head = None
        with store.transaction():
            head = store.head()
            if head.size == head.checkpoint_size:
                return None
            checkpoint = self._sign(head.frontier, head.last_hash)
            store.insert_checkpoint(checkpoint)
            after = Head(head.size, head.last_hash, head.frontier, head.size)
            store.move_head(head, after)
        self._head = after
        return checkpoint

    def _sign(self, frontier: Frontier, last_hash: str) -> Checkpoint:
        return sign_checkpoint(self.signer, self.log_id, frontier, last_hash, datetime.now(UTC))
