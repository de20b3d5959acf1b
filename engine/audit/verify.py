"""Verification of a whole log: the hash chain, every checkpoint's signature and Merkle root, the tail.

Needs only the database and the public key, so a third party can run it on a copy. Stops at the
first thing broken and names it: the record (seq and decision id) and what is wrong with it. Given a
checkpoint kept outside the log, it also shows that the log still holds every record it signed.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.audit.canonical import CanonicalError, canonical_json
from engine.audit.checkpoint import Checkpoint, CheckpointError
from engine.audit.errors import AuditError
from engine.audit.keys import Verifier
from engine.audit.merkle import Frontier, leaf_hash
from engine.audit.record import GENESIS_HASH, record_hash, rules_of
from engine.audit.store import Anchor, CorruptError, Store, Stored, StoredCheckpoint, StoreError
from engine.runtime.request import QUOTE_CHARS, quoted

EDITED = "edited"
DELETED = "deleted"
REORDERED = "reordered"
TRUNCATED = "truncated"
FORGED = "forged checkpoint"
REWRITTEN = "rewritten"
CORRUPT = "corrupt"


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
            where += f" (decision {_shown(self.decision_id)})"
        return f"{where}: {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class Report:
    records: int  # records checked
    first_seq: int  # the first record kept (after pruning: the one after the cut)
    last_seq: int
    checkpoints: int  # checkpoints whose signature and root were checked
    signed: int  # records covered by the last checked checkpoint
    problem: Problem | None
    held: int = 0  # the size of the outside checkpoint whose records the log was shown to hold (0: none)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is not None:
            return f"audit log BROKEN at {self.problem}"
        span = f"records {self.first_seq}..{self.last_seq}" if self.records else "no records"
        unsigned = self.last_seq - self.signed if self.records else 0
        tail = f"; {unsigned} record(s) after it are chained, not yet signed" if unsigned > 0 else ""
        held = f"; holds the {self.held} records of the saved checkpoint" if self.held else ""
        return (
            f"audit log whole: {self.records} record(s) ({span}), {self.checkpoints} checkpoint(s) verified; "
            f"signed through record {self.signed}{tail}{held}"
        )


def verify_log(store: Store, verifier: Verifier, saved: Checkpoint | None = None) -> Report:
    """Check everything in ``store`` against ``verifier``'s key, in one consistent snapshot; with
    ``saved`` (a checkpoint kept outside the log), also that the log still holds the records it signed.

    Raises StoreError when the database cannot be read, AuditError when ``saved`` predates a prune.
    """
    try:
        with store.snapshot():
            return _Walk(store, verifier, saved).run()
    except sqlite3.Error as exc:
        raise StoreError(f"{store.path}: cannot read the audit log: {exc}") from None


class _Index:
    """The rule index, read beside the records (both in seq order)."""

    def __init__(self, entries: Iterator[tuple[int, tuple[str, ...]]]) -> None:
        self._entries = entries
        self._next = next(entries, None)

    def take(self, seq: int) -> tuple[int, tuple[str, ...]]:
        """The next entry if it is for record ``seq`` or an earlier one (which the log does not hold),
        else ``(seq, ())``: no rule indexed for it."""
        entry = self._next
        if entry is None or entry[0] > seq:
            return seq, ()
        self._next = next(self._entries, None)
        return entry

    def rest(self) -> int:
        """The record the next entry is for, or 0 if none is left."""
        return self._next[0] if self._next is not None else 0


class _Walk:
    def __init__(self, store: Store, verifier: Verifier, saved: Checkpoint | None) -> None:
        self.store = store
        self.verifier = verifier
        self.saved = saved  # until the walk reaches its size
        self.held = 0
        self.checked = 0
        self.log_id = ""
        self.anchor = Anchor(0, GENESIS_HASH, Frontier())  # until _start reads them
        self.frontier = Frontier()
        self.prev_hash = GENESIS_HASH
        self.signed = 0
        self.pending: deque[StoredCheckpoint] = deque()
        self.latest = 0  # the size of the last stored checkpoint
        self.index = _Index(iter(()))

    def run(self) -> Report:
        try:
            problem = self._start() or self._anchor() or self._records() or self._tail()
        except CorruptError as exc:
            problem = Problem(CORRUPT, str(exc), exc.seq)
        count = self.frontier.size - self.anchor.size
        first = self.anchor.size + 1 if count else 0
        return Report(count, first, self.frontier.size, self.checked, self.signed, problem, self.held)

    def _start(self) -> Problem | None:
        """Read where the walk starts (each read may raise CorruptError); check the saved checkpoint."""
        log_id = self.store.meta("log_id")
        if log_id is None:
            return Problem(CORRUPT, "meta: the log's id (key log_id) is missing")
        self.log_id = log_id
        self.anchor = self.store.anchor()
        self.frontier = self.anchor.frontier.copy()
        self.prev_hash = self.anchor.head
        self.signed = self.anchor.size
        self.pending.extend(self.store.checkpoints())
        self.latest = self.pending[-1].size if self.pending else 0
        self.index = _Index(self.store.rule_index())
        return self._saved_signature()

    def _anchor(self) -> Problem | None:
        """Older checkpoints need only a good signature; the one at a prune cut vouches for the anchor."""
        while self.pending and self.pending[0].size < self.anchor.size:
            problem = self._signature(self.pending.popleft())
            if problem is not None:
                return problem
        if self.anchor.size == 0:
            return self._saved_reached()
        if not self.pending or self.pending[0].size != self.anchor.size:
            return Problem(
                TRUNCATED, f"the log was pruned through record {self.anchor.size} but its checkpoint is gone"
            )
        return self._checkpoint(self.pending.popleft()) or self._saved_reached()

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
            problem = self._saved_reached()
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
        if self.saved is not None:
            return Problem(
                TRUNCATED,
                f"the saved checkpoint covers {self.saved.size} records but the log ends at record {end}: "
                f"records {end + 1}..{self.saved.size} were removed",
                seq=end + 1,
            )
        return self._head(end) or self._orphans()

    def _head(self, end: int) -> Problem | None:
        """The head is where the next record will be chained: it must be the end of what was walked."""
        head = self.store.head()
        if head.size > end:
            return Problem(
                TRUNCATED, f"{head.size} records were written but the log ends at record {end}", seq=end + 1
            )
        stored = (head.size, head.last_hash, head.frontier.to_bytes().hex(), head.checkpoint_size)
        walked = (end, self.prev_hash, self.frontier.to_bytes().hex(), self.latest)
        for name, says, found in zip(_HEAD_FIELDS, stored, walked, strict=True):
            if says != found:
                return Problem(
                    CORRUPT,
                    f"the head (where the next record is chained) says its {name} is {_brief(says)}, "
                    f"but the log's is {_brief(found)}",
                )
        return None

    def _orphans(self) -> Problem | None:
        seq = self.index.rest()
        if seq:
            return Problem(EDITED, f"the rule index lists record {seq}, which the log does not hold", seq)
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
        return self._indexed(row, data)

    def _indexed(self, row: Stored, data: dict[str, Any]) -> Problem | None:
        """The rule index (what `query --rule` reads) must list exactly the rules the record names."""
        seq, indexed = self.index.take(row.seq)
        if seq != row.seq:
            return Problem(EDITED, f"the rule index lists record {seq}, which the log does not hold", seq)
        named = rules_of(data)
        if indexed != named:
            message = f"the rule index lists {_rules(indexed)} but the record names {_rules(named)}"
            return Problem(EDITED, f"{message}: the index was edited", row.seq, row.decision_id)
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

    def _saved_signature(self) -> Problem | None:
        saved = self.saved
        if saved is None:
            return None
        if not saved.signed_by(self.verifier):
            key = self.verifier.key_id[:16]
            return Problem(FORGED, f"the saved checkpoint does not verify with the public key {key}")
        if saved.log_id != self.log_id:
            return Problem(
                FORGED,
                f"the saved checkpoint belongs to log {_shown(saved.log_id)}, not {_shown(self.log_id)}",
            )
        if saved.size < self.anchor.size:
            raise AuditError(
                f"the saved checkpoint covers records 1..{saved.size}, which were pruned (the log now starts "
                f"after record {self.anchor.size}): compare the log with a checkpoint saved since"
            )
        return None

    def _saved_reached(self) -> Problem | None:
        """Once the walk reaches the saved checkpoint's size, the log must hold the tree that it signed."""
        saved = self.saved
        if saved is None or saved.size != self.frontier.size:
            return None
        self.saved = None
        if saved.root != self.frontier.root().hex() or saved.head != self.prev_hash:
            return Problem(
                REWRITTEN,
                f"the log's first {saved.size} records do not match the root of the saved checkpoint "
                f"(signed at {_shown(saved.time)}): records were replaced after it was saved",
            )
        self.held = saved.size
        return None

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
                f" (it names key {_shown(checkpoint.key_id[:16])})"
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
                FORGED,
                f"checkpoint {stored.size} belongs to log {_shown(checkpoint.log_id)}, "
                f"not {_shown(self.log_id)}",
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
        if stored.frontier != self.frontier.to_bytes():
            return Problem(
                CORRUPT,
                f"checkpoint {stored.size}: its stored frontier does not match the records it covers "
                "(pruning at it would be refused)",
            )
        self.checked += 1
        self.signed = checkpoint.size
        return None


_HEAD_FIELDS = ("size", "last hash", "frontier", "checkpoint size")


def _brief(value: object) -> str:
    if not isinstance(value, str):
        return repr(value)
    if not value.isprintable():
        return quoted(value, 16)
    return f"{value[:16]}..." if len(value) > 16 else repr(value)


def _shown(value: str) -> str:
    """Stored text as a one-line message may show it: as is if short and printable, else quoted
    (repr, cut), so that no stored value can split the verifier's answer or fake a line of it."""
    if value and value.isprintable() and len(value) <= QUOTE_CHARS:
        return value
    return quoted(value)


def _quoted(value: object) -> str:
    return quoted(value) if isinstance(value, str) else repr(value)[:QUOTE_CHARS]


def _rules(rules: tuple[str, ...]) -> str:
    return str(list(rules)) if rules else "no rule"


def _object(body: str) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _integrity(row: Stored, data: dict[str, Any]) -> str | None:
    """Why the record is not what was written, or None."""
    try:
        recomputed = record_hash(data)
        canonical = canonical_json(data) == row.body
    except (CanonicalError, RecursionError):
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
            says = f"column {column} says {_quoted(stored)} but the record says {_quoted(value)}"
            return f"{says}: the index was edited"
    return None
