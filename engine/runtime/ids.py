"""Time-ordered unique ids (UUIDv7, RFC 9562) for decisions and approvals."""

from __future__ import annotations

import os
import time
import uuid
from collections import deque

_VERSION = 0x7
_VARIANT = 0b10
_RANDOM_BYTES = 10  # 74 of their 80 bits are used
_REFILL_IDS = 256
# Random bytes drawn from the OS a few kilobytes at a time: os.urandom releases the interpreter lock,
# and in a busy server each release can cost a whole time slice of another thread before it returns.
# deque.popleft is atomic, so threads never share a chunk; two refilling at once only add more. A
# forked child starts with an empty pool, so that parent and child never draw the same bytes.
_chunks: deque[bytes] = deque()
os.register_at_fork(after_in_child=_chunks.clear)


def _random() -> int:
    while True:
        try:
            return int.from_bytes(_chunks.popleft(), "big")
        except IndexError:
            block = os.urandom(_RANDOM_BYTES * _REFILL_IDS)
            _chunks.extend(block[i : i + _RANDOM_BYTES] for i in range(0, len(block), _RANDOM_BYTES))


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix time in milliseconds, then 74 random bits (ordered by millisecond)."""
    millis = time.time_ns() // 1_000_000
    rand = _random()
    rand_a = (rand >> 62) & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | _VERSION << 76 | rand_a << 64 | _VARIANT << 62 | rand_b
    return uuid.UUID(int=value)


def new_id() -> str:
    """A fresh UUIDv7 in its canonical text form."""
    return str(uuid7())
