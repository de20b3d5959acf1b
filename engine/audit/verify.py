"""Verification of a whole log: the hash chain, every checkpoint's signature and Merkle root, the tail.

Needs only the database and the public key, so a third party can run it on a copy. Stops at the
first thing broken and names it: the record (seq and decision id) and what is wrong with it.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from engine.audit.canonical import CanonicalError, canonical_json
from engine.audit.checkpoint import CheckpointError
from engine.audit.keys import Verifier
from engine.audit.merkle import leaf_hash
from engine.audit.record import record_hash
from engine.audit.store import Store, Stored, StoredCheckpoint

EDITED = "edited"
DELETED = "deleted"
REORDERED = "reordered"
TRUNCATED = "truncated"
FORGED = "forged checkpoint"
REWRITTEN = "rewritten"


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing found broken: what kind of tampering it shows, where, and the details."""

    kind: str
    message: str
    seq: int = 0
    decision_id: str = ""

    def __str__(self) -> str:
        where = f"record {self.seq}" if self.seq else "log"
        if self.decision_id:
            where += f" (decision {self.decision_id})"
        return f"{where}: {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class Report:
    records: int  # records checked
    first_seq: int  # the first record kept (after pruning: the one after the cut)
    last_seq: int
    checkpoints: int  # checkpoints whose signature and root were checked
    signed: int  # records covered by the last checked checkpoint
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is not None:
            return f"audit log BROKEN at {self.problem}"
        span = f"records {self.first_seq}..{self.last_seq}" if self.records else "no records"
        unsigned = self.last_seq - self.signed if self.records else 0
        tail = f"; {unsigned} record(s) after it are chained, not yet signed" if unsigned > 0 else ""
        return (
            f"audit log whole: {self.records} record(s) ({span}), {self.checkpoints} checkpoint(s) verified; "
            f"signed through record {self.signed}{tail}"
        )


def verify_log(store: Store, verifier: Verifier) -> Report:
    """Check everything in ``store`` against ``verifier``'s key, in one consistent snapshot."""
    with store.snapshot():
        return _Walk(store, verifier).run()


class _Walk:
    def __init__(self, store: Store, verifier: Verifier) -> None:
        self.store = store
        self.verifier = verifier
        self.log_id = store.meta("log_id") or ""
        self.anchor = store.anchor()
        self.frontier = self.anchor.frontier.copy()
        self.prev_hash = self.anchor.head
        self.pending = deque(store.checkpoints())
        self.checked = 0
        self.signed = self.anchor.size

    def run(self) -> Report:
        problem = self._anchor() or self._records() or self._tail()
        count = self.frontier.size - self.anchor.size
        first = self.anchor.size + 1 if count else 0
        return Report(count, first, self.frontier.size, self.checked, self.signed, problem)

    def _anchor(self) -> Problem | None:
        """Older checkpoints need only a good signature; the one at a prune cut vouches for the anchor."""
        while self.pending and self.pending[0].size < self.anchor.size:
            problem = self._signature(self.pending.popleft())
            if problem is not None:
                return problem
        if self.anchor.size == 0:
            return None
        if not self.pending or self.pending[0].size != self.anchor.size:
            return Problem(
                TRUNCATED, f"the log was pruned through record {self.anchor.size} but its checkpoint is gone"
            )
        return self._checkpoint(self.pending.popleft())

    def _records(self) -> Problem | None:
        for row in self.store.records():
            problem = self._record(row)
            if problem is not None:
                return problem
            self.frontier.append(leaf_hash(bytes.fromhex(row.hash)))
            self.prev_hash = row.hash
            while self.pending and self.pending[0].size <= self.frontier.size:
                problem = self._checkpoint(self.pending.popleft())
                if problem is not None:
                    return problem
        return None

    def _tail(self) -> Problem | None:
        end = self.frontier.size
        for stored in self.pending:
            problem = self._signature(stored)
            if problem is not None:
                return problem
            return Problem(
                TRUNCATED,
                f"checkpoint {stored.size} is signed over {stored.size} records but the log ends at record "
                f"{end}: records {end + 1}..{stored.size} were removed",
                seq=end + 1,
            )
        written = self.store.head().size
        if written > end:
            return Problem(
                TRUNCATED, f"{written} records were written but the log ends at record {end}", seq=end + 1
            )
        return None

    # one record

    def _record(self, row: Stored) -> Problem | None:
        expected = self.frontier.size + 1
        data = _object(row.body)
        if data is None:
            return Problem(EDITED, "its body is not a JSON object", row.seq, row.decision_id)
        message = _integrity(row, data)
        if message is not None:
            return Problem(EDITED, message, row.seq, row.decision_id)
        problem = self._order(row, data.get("seq"), expected)
        if problem is not None:
            return problem
        if data.get("prev_hash") != self.prev_hash:
            return Problem(
                DELETED,
                f"its prev_hash is not the hash of record {expected - 1}: "
                "a record before it was deleted or replaced",
                row.seq,
                row.decision_id,
            )
        return None

    def _order(self, row: Stored, body_seq: Any, expected: int) -> Problem | None:
        if not isinstance(body_seq, int):
            return Problem(EDITED, "its seq is not a number", row.seq, row.decision_id)
        if body_seq == expected:
            if row.seq != expected:
                return Problem(EDITED, f"seq column says {row.seq}, the record says {expected}", row.seq)
            return None
        if self.store.seq_of_body(expected) is not None:
            message = f"record {body_seq} is stored where record {expected} belongs: records were reordered"
            return Problem(REORDERED, message, expected, row.decision_id)
        missing = (
            f"records {expected}..{body_seq - 1} are" if body_seq - 1 > expected else f"record {expected} is"
        )
        return Problem(DELETED, f"{missing} missing: deleted from the log", expected)

    # checkpoints

    def _signature(self, stored: StoredCheckpoint) -> Problem | None:
        try:
            checkpoint = stored.checkpoint()
        except CheckpointError as exc:
            return Problem(FORGED, f"checkpoint {stored.size}: {exc}")
        if checkpoint.size != stored.size:
            return Problem(
                FORGED, f"checkpoint row {stored.size} holds a statement signed for size {checkpoint.size}"
            )
        if not checkpoint.signed_by(self.verifier):
            other = (
                f" (it names key {checkpoint.key_id[:16]})"
                if checkpoint.key_id != self.verifier.key_id
                else ""
            )
            return Problem(
                FORGED,
                f"checkpoint {stored.size}: the signature does not verify with the public key "
                f"{self.verifier.key_id[:16]}{other}",
            )
        if checkpoint.log_id != self.log_id:
            return Problem(
                FORGED, f"checkpoint {stored.size} belongs to log {checkpoint.log_id}, not {self.log_id}"
            )
        return None

    def _checkpoint(self, stored: StoredCheckpoint) -> Problem | None:
        problem = self._signature(stored)
        if problem is not None:
            return problem
        checkpoint = stored.checkpoint()
        if checkpoint.root != self.frontier.root().hex() or checkpoint.head != self.prev_hash:
            first = self.signed + 1
            return Problem(
                REWRITTEN,
                f"records {first}..{checkpoint.size} do not match the Merkle root signed in checkpoint "
                f"{checkpoint.size}: they were rewritten after it was signed",
                first,
            )
        self.checked += 1
        self.signed = checkpoint.size
        return None


def _object(body: str) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _integrity(row: Stored, data: dict[str, Any]) -> str | None:
    """Why the record is not what was written, or None."""
    try:
        recomputed = record_hash(data)
        canonical = canonical_json(data) == row.body
    except CanonicalError:
        return "its body holds values that records never hold"
    if recomputed != data.get("hash"):
        return "its contents do not match its hash: a field was edited"
    if row.hash != recomputed:
        return "the hash column does not match the record"
    if not canonical:
        return "its body is not in canonical form: it was re-encoded or edited"
    return _columns(row, data)


def _columns(row: Stored, data: dict[str, Any]) -> str | None:
    ruleset, principal = data.get("ruleset"), data.get("principal")
    body = {
        "decision_id": data.get("decision_id"),
        "time": data.get("time"),
        "outcome": data.get("outcome"),
        "ruleset": ruleset.get("name") if isinstance(ruleset, dict) else None,
        "principal": principal.get("id") if isinstance(principal, dict) else None,
    }
    for column, value in body.items():
        stored = getattr(row, column)
        if stored != value:
            return f"column {column} says {stored!r} but the record says {value!r}: the index was edited"
    return None
