"""Time-ordered unique ids (UUIDv7, RFC 9562) for decisions and approvals."""

from __future__ import annotations

import os
import time
import uuid

_VERSION = 0x7
_VARIANT = 0b10


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix time in milliseconds, then 74 random bits (ordered by millisecond)."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = (rand >> 62) & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | _VERSION << 76 | rand_a << 64 | _VARIANT << 62 | rand_b
    return uuid.UUID(int=value)


def new_id() -> str:
    """A fresh UUIDv7 in its canonical text form."""
    return str(uuid7())
