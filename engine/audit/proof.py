"""Inclusion proofs: a record, its RFC 6962 audit path and the signed checkpoint; checkable offline.

A proof shows the record is in the tree its checkpoint signs. Against a later checkpoint kept outside
the log (saved, or from a witness), it holds only for the very tree that one signs: `prove --against`
makes such a proof, and only while the log still holds every record that checkpoint covers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.audit.canonical import CanonicalError
from engine.audit.checkpoint import Checkpoint, CheckpointError
from engine.audit.errors import AuditError
from engine.audit.keys import Verifier
from engine.audit.merkle import MerkleError, Tree, leaf_hash, root_from_inclusion
from engine.audit.record import record_hash
from engine.audit.store import Store

PROOF_TYPE = "palisade.audit.inclusion-proof/v1"


class ProofError(AuditError):
    """A proof does not hold (or cannot be made); the message says which part fails."""


@dataclass(frozen=True, slots=True)
class Proven:
    """What a valid proof establishes: this record is entry ``seq`` of the log signed at ``size``."""

    seq: int
    decision_id: str
    size: int
    log_id: str
    checkpoint_time: str
    root: str  # the signed root (hex)


def prove(store: Store, decision_id: str, against: Checkpoint | None = None) -> dict[str, Any]:
    """The inclusion proof of ``decision_id``'s record, as JSON data: against the latest signed
    checkpoint, or against ``against`` (kept outside the log), whose records the log must still hold."""
    with store.snapshot():
        row = store.find(decision_id)
        if row is None:
            raise ProofError(f"no record with decision id {decision_id}")
        checkpoint = against or _latest(store)
        if checkpoint is None or checkpoint.size < row.seq:
            raise ProofError(_uncovered(row.seq, checkpoint, given=against is not None))
        which = "the checkpoint given" if against else "the latest checkpoint"
        tree = _tree(store, checkpoint.size, which)
        if against is not None:
            _holds(tree, against, store.meta("log_id") or "")
        try:
            path = tree.inclusion_proof(row.seq - 1, checkpoint.size)
        except MerkleError as exc:
            raise ProofError(f"record {row.seq}: {exc}") from None
        record = _record(row.seq, row.body)
    return {
        "type": PROOF_TYPE,
        "record": record,
        "leaf_index": row.seq - 1,
        "tree_size": checkpoint.size,
        "audit_path": [node.hex() for node in path],
        "checkpoint": checkpoint.to_json(),
    }


def _latest(store: Store) -> Checkpoint | None:
    stored = store.last_checkpoint()
    return stored.checkpoint() if stored else None


def _uncovered(seq: int, checkpoint: Checkpoint | None, *, given: bool) -> str:
    signed = checkpoint.size if checkpoint else 0
    if given:
        return f"record {seq} is not covered by the checkpoint given ({signed} records)"
    return (
        f"record {seq} is not covered by a signed checkpoint yet (the latest covers {signed} records); "
        "try again after the next checkpoint"
    )


def _tree(store: Store, size: int, which: str) -> Tree:
    anchor = store.anchor()
    hashes = store.record_hashes(anchor.size + 1, size)
    held = hashes[-1][0] if hashes else anchor.size
    if held < size:
        raise ProofError(f"the log holds {held} records; {which} covers {size}: run `palisade audit verify`")
    if [seq for seq, _ in hashes] != list(range(anchor.size + 1, size + 1)):
        raise ProofError(f"the log has gaps before {which}; run `palisade audit verify`")
    return Tree(anchor.frontier, [leaf_hash(bytes.fromhex(digest)) for _, digest in hashes])


def _holds(tree: Tree, against: Checkpoint, log_id: str) -> None:
    """The log must hold the very tree that ``against`` signs."""
    if against.log_id != log_id:
        raise ProofError(f"the checkpoint given is of log {against.log_id}, not of this one ({log_id})")
    try:
        root = tree.hash(0, against.size)
    except MerkleError as exc:
        raise ProofError(f"the checkpoint given cannot be compared with the log: {exc}") from None
    if root.hex() != against.root:
        raise ProofError(
            f"the log's first {against.size} records do not match the root of the checkpoint given: "
            "records were replaced after it was signed; run `palisade audit verify --against` with it"
        )


def _record(seq: int, body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ProofError(f"record {seq} is not a JSON object; run `palisade audit verify`")
    return data


def verify_proof(proof: Mapping[str, Any], verifier: Verifier, against: Checkpoint | None = None) -> Proven:
    """Check a proof offline with only the public key; raises ProofError naming what fails.

    With ``against`` (a later checkpoint of the same log, kept outside it), the proof must also be
    for the tree that checkpoint signs: a record it no longer covers, or another tree of the same
    size, is refused."""
    try:
        proven = _verify(proof, verifier)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"malformed proof: {type(exc).__name__}: {exc}") from None
    if against is not None:
        _covered(proven, against, verifier)
    return proven


def _verify(proof: Mapping[str, Any], verifier: Verifier) -> Proven:
    if proof.get("type") != PROOF_TYPE:
        raise ProofError(f"not a {PROOF_TYPE} document")
    record = proof["record"]
    checkpoint = _signed_checkpoint(proof["checkpoint"], verifier)
    try:
        digest = record_hash(record)
    except CanonicalError as exc:
        raise ProofError(f"the record has no canonical form: {exc}") from None
    if digest != record.get("hash"):
        raise ProofError("the record's contents do not match its hash: it was altered")
    index, size = proof["leaf_index"], proof["tree_size"]
    if index != record.get("seq", 0) - 1 or size != checkpoint.size:
        raise ProofError("the proof's leaf index or tree size does not match the record and checkpoint")
    try:
        root = root_from_inclusion(index, size, leaf_hash(bytes.fromhex(digest)), _path(proof["audit_path"]))
    except MerkleError as exc:
        raise ProofError(f"the audit path is malformed: {exc}") from None
    if root.hex() != checkpoint.root:
        raise ProofError("the audit path does not lead to the signed root: the record is not in that log")
    decision_id = record.get("decision_id", "")
    return Proven(record["seq"], decision_id, size, checkpoint.log_id, checkpoint.time, checkpoint.root)


def _signed_checkpoint(data: Mapping[str, Any], verifier: Verifier) -> Checkpoint:
    try:
        checkpoint = Checkpoint.from_json(data)
    except CheckpointError as exc:
        raise ProofError(f"the checkpoint is malformed: {exc}") from None
    if not checkpoint.signed_by(verifier):
        raise ProofError("the checkpoint's signature does not verify with the public key")
    return checkpoint


def _covered(proven: Proven, against: Checkpoint, verifier: Verifier) -> None:
    """``against`` must sign the very tree the proof is for."""
    if not against.signed_by(verifier):
        raise ProofError("the checkpoint given does not verify with the public key")
    if against.log_id != proven.log_id:
        raise ProofError(f"the checkpoint given is of log {against.log_id}, the proof of log {proven.log_id}")
    shrank = against.size < proven.size and against.time > proven.checkpoint_time
    after = f" (the log shrank from {proven.size} records after the proof was made)" if shrank else ""
    if against.size < proven.seq:
        raise ProofError(
            f"the checkpoint given covers {against.size} records, not record {proven.seq}{after}"
        )
    if against.size != proven.size:
        raise ProofError(
            f"the proof is for the tree of {proven.size} records, the checkpoint given signs {against.size}"
            f"{after}: prove the record against it (`palisade audit prove {proven.decision_id} --against`)"
        )
    if against.root != proven.root:
        raise ProofError(
            f"the checkpoint given signs another tree of {against.size} records: "
            "the log was rewritten after the proof was made"
        )


def _path(nodes: list[str]) -> list[bytes]:
    path = [bytes.fromhex(node) for node in nodes]
    if any(len(node) != 32 for node in path):
        raise ProofError("the audit path holds a hash that is not 32 bytes")
    return path
