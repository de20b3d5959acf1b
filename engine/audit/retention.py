"""Retention: prune old records at a signed checkpoint, keeping what remains verifiable from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.audit.config import Retention
from engine.audit.errors import AuditError
from engine.audit.record import format_time
from engine.audit.store import Anchor, Store, StoredCheckpoint


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a prune did: the log now starts after record ``start_after``; ``deleted`` records went."""

    start_after: int
    deleted: int


def prune(store: Store, retention: Retention, now: datetime) -> Pruned:
    """Delete the records ``retention`` no longer keeps, up to the last checkpoint that allows.

    The cut is always at a signed checkpoint: its frontier (the Merkle subtree roots of everything
    before the cut, checked against its signed root) becomes the log's anchor, so the records that
    remain, and every later checkpoint, still verify. Records after the last checkpoint are never cut.
    """
    with store.transaction():
        anchor = store.anchor()
        cut = store.last_checkpoint(above=anchor.size, at_most=_wanted(store, retention, now))
        if cut is None:
            return Pruned(anchor.size, 0)
        new_anchor = _anchor_at(store, cut)
        store.set_anchor(new_anchor)
        deleted = store.delete_through(cut.size)
    return Pruned(new_anchor.size, deleted)


def _wanted(store: Store, retention: Retention, now: datetime) -> int:
    """The last seq that retention would delete (0: none)."""
    wanted = 0
    if retention.max_records is not None:
        wanted = max(wanted, store.head().size - retention.max_records)
    if retention.max_age_days is not None:
        wanted = max(
            wanted, store.seq_at_or_before(format_time(now - timedelta(days=retention.max_age_days)))
        )
    return wanted


def _anchor_at(store: Store, stored: StoredCheckpoint) -> Anchor:
    """The anchor a cut at ``stored`` leaves, after checking that the checkpoint matches the log."""
    checkpoint = stored.checkpoint()
    anchor = Anchor.at(checkpoint)
    last = store.record_hashes(checkpoint.size, checkpoint.size)
    if anchor.frontier.root().hex() != checkpoint.root or last != [(checkpoint.size, checkpoint.head)]:
        raise AuditError(
            f"refusing to prune: checkpoint {checkpoint.size} does not match the stored log; "
            "run `palisade audit verify`"
        )
    return anchor
