"""Inclusion proofs: a record, its RFC 6962 audit path and the signed checkpoint; checkable offline."""

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


def prove(store: Store, decision_id: str) -> dict[str, Any]:
    """The inclusion proof of ``decision_id``'s record against the latest signed checkpoint, as JSON data."""
    with store.snapshot():
        row = store.find(decision_id)
        if row is None:
            raise ProofError(f"no record with decision id {decision_id}")
        stored = store.last_checkpoint()
        checkpoint = stored.checkpoint() if stored else None
        if checkpoint is None or checkpoint.size < row.seq:
            signed = checkpoint.size if checkpoint else 0
            raise ProofError(
                f"record {row.seq} is not covered by a signed checkpoint yet (the latest covers {signed} "
                "records); try again after the next checkpoint"
            )
        path = _tree(store, checkpoint.size).inclusion_proof(row.seq - 1, checkpoint.size)
    return {
        "type": PROOF_TYPE,
        "record": _record(row.body),
        "leaf_index": row.seq - 1,
        "tree_size": checkpoint.size,
        "audit_path": [node.hex() for node in path],
        "checkpoint": checkpoint.to_json(),
    }


def _tree(store: Store, size: int) -> Tree:
    anchor = store.anchor()
    hashes = store.record_hashes(anchor.size + 1, size)
    if [seq for seq, _ in hashes] != list(range(anchor.size + 1, size + 1)):
        raise ProofError("the log has gaps before the checkpoint; run `palisade audit verify`")
    return Tree(anchor.frontier, [leaf_hash(bytes.fromhex(digest)) for _, digest in hashes])


def _record(body: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return data


def verify_proof(proof: Mapping[str, Any], verifier: Verifier) -> Proven:
    """Check a proof offline with only the public key; raises ProofError naming what fails."""
    try:
        return _verify(proof, verifier)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"malformed proof: {type(exc).__name__}: {exc}") from None


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
    return Proven(record["seq"], record.get("decision_id", ""), size, checkpoint.log_id, checkpoint.time)


def _signed_checkpoint(data: Mapping[str, Any], verifier: Verifier) -> Checkpoint:
    try:
        checkpoint = Checkpoint.parse(data["statement"], data["signature"])
    except CheckpointError as exc:
        raise ProofError(f"the checkpoint is malformed: {exc}") from None
    if not checkpoint.signed_by(verifier):
        raise ProofError("the checkpoint's signature does not verify with the public key")
    return checkpoint


def _path(nodes: list[str]) -> list[bytes]:
    path = [bytes.fromhex(node) for node in nodes]
    if any(len(node) != 32 for node in path):
        raise ProofError("the audit path holds a hash that is not 32 bytes")
    return path
