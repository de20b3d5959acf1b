"""The chain: places records after the log's head, grows the Merkle tree, signs checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from engine.audit.checkpoint import Checkpoint, sign_checkpoint
from engine.audit.errors import AuditError, DuplicateDecision
from engine.audit.keys import Signer
from engine.audit.merkle import Frontier, leaf_hash
from engine.audit.record import Entry, Record, seal
from engine.audit.store import Head, Store


class Chain:
    """Appends to the log stored in a database. The head is read inside each write transaction, so

    several processes (server workers) may share one log: SQLite's write lock orders their batches,
    and the chain has neither gaps nor forks whatever fails in between.
    """

    def __init__(self, signer: Signer, log_id: str, checkpoint_every_records: int) -> None:
        self.signer = signer
        self.log_id = log_id
        self.every_records = checkpoint_every_records

    def append(
        self, store: Store, entries: Sequence[Entry]
    ) -> tuple[list[Record | AuditError], Checkpoint | None]:
        """Seal and store ``entries`` in one transaction; sign a checkpoint if one is due."""
        with store.transaction():
            head = store.head()
            frontier, size, last = head.frontier, head.size, head.last_hash
            taken = store.taken([entry.decision_id for entry in entries])
            results: list[Record | AuditError] = []
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
            store.insert([r for r in results if isinstance(r, Record)])
            checkpoint = None
            if size - head.checkpoint_size >= self.every_records:
                checkpoint = self._sign(store, frontier, last)
            signed = checkpoint.size if checkpoint else head.checkpoint_size
            store.set_head(Head(size, last, frontier, signed))
        return results, checkpoint

    def checkpoint(self, store: Store) -> Checkpoint | None:
        """Sign the head now if records were added since the last checkpoint."""
        with store.transaction():
            head = store.head()
            if head.size == head.checkpoint_size:
                return None
            checkpoint = self._sign(store, head.frontier, head.last_hash)
            store.set_head(Head(head.size, head.last_hash, head.frontier, head.size))
        return checkpoint

    def _sign(self, store: Store, frontier: Frontier, last_hash: str) -> Checkpoint:
        checkpoint = sign_checkpoint(self.signer, self.log_id, frontier, last_hash, datetime.now(UTC))
        store.insert_checkpoint(checkpoint)
        return checkpoint
