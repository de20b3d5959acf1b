"""Who may answer approvals: approver names, each known by the SHA-256 of a secret bearer token.

The approvers file (`[approvals] approvers_file` in the service config) is TOML:

    [approvers]
    alice = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

`palisade approvals token NAME` makes a token and prints the line to add. The server keeps only
the digests; an approver sends the token as gRPC metadata ``authorization: Bearer TOKEN``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DIGEST_PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
TOKEN_BYTES = 32


class ApproversError(ValueError):
    """The approvers file cannot be used; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Approvers:
    """The approvers that a token identifies, by the token's digest."""

    by_digest: Mapping[str, str]

    @classmethod
    def load(cls, path: str | Path) -> Approvers:
        """Read an approvers file; raises ApproversError naming what is wrong and where."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ApproversError(f"{path}: cannot read the approvers file: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ApproversError(f"{path}: not valid TOML: {exc}") from None
        table = data.get("approvers")
        if not isinstance(table, dict) or set(data) != {"approvers"}:
            raise ApproversError(f'{path}: expected one [approvers] table of name = "sha256:..." lines')
        by_digest: dict[str, str] = {}
        for name, digest in table.items():
            _check(path, name, digest)
            if digest in by_digest:
                raise ApproversError(f"{path}: {name} and {by_digest[digest]} have the same token")
            by_digest[digest] = name
        return cls(by_digest)

    def identify(self, token: str) -> str | None:
        """The approver whose token this is, or None."""
        return self.by_digest.get(token_digest(token))


def _check(path: str | Path, name: str, digest: object) -> None:
    if not _NAME.fullmatch(name):
        raise ApproversError(f"{path}: approver {name!r}: a name is letters, digits and ._@+- (at most 128)")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ApproversError(
            f'{path}: approver {name}: expected "sha256:" and 64 lowercase hex digits '
            "(`palisade approvals token NAME` makes one)"
        )


def token_digest(token: str) -> str:
    """What the approvers file holds for ``token``."""
    return DIGEST_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random bearer token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)
