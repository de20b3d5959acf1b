"""Signed checkpoints: an Ed25519 signature over the log's size, Merkle root and last record hash."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.audit.canonical import canonical_json
from engine.audit.errors import AuditError
from engine.audit.keys import Signer, Verifier
from engine.audit.merkle import Frontier
from engine.audit.record import format_time
from engine.runtime.request import quoted

STATEMENT_TYPE = "palisade.audit.checkpoint/v1"
_FIELDS = {"type": str, "log_id": str, "key_id": str, "size": int, "root": str, "head": str, "time": str}


class CheckpointError(AuditError, ValueError):
    """A checkpoint (stored, or saved in a file) is malformed; the message says how and where."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head. ``statement`` is the exact canonical JSON text that ``signature`` covers:

    {"head": <hash of record ``size``>, "key_id": <SHA-256 of the public key, DER>, "log_id": ...,
     "root": <RFC 6962 root of records 1..size, hex>, "size": N, "time": <RFC 3339>,
     "type": "palisade.audit.checkpoint/v1"}
    """

    size: int
    root: str
    head: str
    time: str
    log_id: str
    key_id: str
    statement: str
    signature: str  # base64
    frontier: bytes = b""  # not signed; its root is checked against ``root`` before it is trusted

    @classmethod
    def parse(cls, statement: str, signature: str, frontier: bytes = b"") -> Checkpoint:
        fields = _parse_statement(statement)
        return cls(
            size=fields["size"],
            root=fields["root"],
            head=fields["head"],
            time=fields["time"],
            log_id=fields["log_id"],
            key_id=fields["key_id"],
            statement=statement,
            signature=signature,
            frontier=frontier,
        )

    def signed_by(self, verifier: Verifier) -> bool:
        try:
            signature = base64.b64decode(self.signature, validate=True)
        except ValueError:  # binascii.Error, or ValueError for a signature that is not ASCII
            return False
        return verifier.verify(self.statement.encode("utf-8"), signature)

    def to_json(self) -> dict[str, Any]:
        return {"statement": self.statement, "signature": self.signature}

    @classmethod
    def from_json(cls, data: object) -> Checkpoint:
        """The checkpoint in ``to_json``'s form (a proof's, a saved file's); raises CheckpointError."""
        if not isinstance(data, dict) or set(data) != {"statement", "signature"}:
            raise CheckpointError('a checkpoint is an object with exactly "statement" and "signature"')
        if not isinstance(data["statement"], str) or not isinstance(data["signature"], str):
            raise CheckpointError('a checkpoint\'s "statement" and "signature" are strings')
        return cls.parse(data["statement"], data["signature"])

    def text(self) -> str:
        """The self-contained form to keep outside the log (a file, a ticket, a witness): one JSON line."""
        return canonical_json(self.to_json()) + "\n"


def load_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint saved in ``path`` (as ``Checkpoint.text`` writes it); raises CheckpointError."""
    try:
        return Checkpoint.from_json(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:  # not JSON, not UTF-8, or not a checkpoint (CheckpointError)
        raise CheckpointError(f"{path}: not a saved checkpoint: {exc}") from None


def sign_checkpoint(signer: Signer, log_id: str, frontier: Frontier, head: str, at: datetime) -> Checkpoint:
    """Sign the tree head of ``frontier`` (whose last record's hash is ``head``)."""
    fields = {
        "type": STATEMENT_TYPE,
        "log_id": log_id,
        "key_id": signer.verifier.key_id,
        "size": frontier.size,
        "root": frontier.root().hex(),
        "head": head,
        "time": format_time(at),
    }
    statement = canonical_json(fields)
    signature = base64.b64encode(signer.sign(statement.encode("utf-8"))).decode("ascii")
    return Checkpoint.parse(statement, signature, frontier.to_bytes())


def _parse_statement(statement: str) -> dict[str, Any]:
    try:
        fields = json.loads(statement)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"statement is not JSON: {exc}") from None
    except RecursionError:
        raise CheckpointError("statement is JSON nested too deeply") from None
    if not isinstance(fields, dict) or set(fields) != set(_FIELDS):
        raise CheckpointError(f"statement must have exactly the fields {sorted(_FIELDS)}")
    for name, kind in _FIELDS.items():
        if not isinstance(fields[name], kind) or isinstance(fields[name], bool):
            raise CheckpointError(f"statement field {name!r} must be a {kind.__name__}")
    if fields["type"] != STATEMENT_TYPE:
        raise CheckpointError(f"statement type is {quoted(fields['type'])}, expected {STATEMENT_TYPE!r}")
    return fields
