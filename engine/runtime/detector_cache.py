"""Detector results cached across requests: a thread-safe LRU bounded in bytes, keyed by text digest."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from detectors.base import DetectorResult, Finding, check_deadline

# A rough, deliberately generous size of one entry: the key, the OrderedDict slot, the result tuple,
# and each finding with its strings.
_ENTRY_BYTES = 240
_FINDING_BYTES = 160


def detector_key(kind: str, params: Mapping[str, Any], settings_key: str = "") -> str:
    """What identifies a detector's behaviour: its kind, canonical parameters, and relevant settings."""
    return f"{kind}\0{json.dumps(params, sort_keys=True, separators=(',', ':'))}\0{settings_key}"


def text_key(detector: str, text: str) -> bytes:
    """The cache key of ``detector`` on ``text``: a 32-byte BLAKE2b digest (the text is not kept)."""
    digest = hashlib.blake2b(detector.encode("utf-8"), digest_size=32)
    digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.digest()


def entry_bytes(result: DetectorResult) -> int:
    return _ENTRY_BYTES + sum(_FINDING_BYTES + len(f.type) + len(f.detail) for f in result.findings)


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    bytes: int
    max_bytes: int


class DetectorCache:
    """Results by key, least recently used dropped first once the byte budget is spent."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[DetectorResult, int]] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> DetectorResult | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return entry[0]

    def put(self, key: bytes, result: DetectorResult) -> None:
        size = entry_bytes(result)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (result, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._entries), self._bytes, self.max_bytes)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


@functools.cache
def shared_cache(max_bytes: int) -> DetectorCache | None:
    """The process's cache for a byte budget (every evaluator with that budget shares it); 0: none."""
    return DetectorCache(max_bytes) if max_bytes > 0 else None


def shifted(findings: tuple[Finding, ...], offset: int) -> tuple[Finding, ...]:
    """Findings of a part of a text, with offsets in the whole text."""
    if not offset:
        return findings
    return tuple(Finding(f.type, f.start + offset, f.end + offset, f.score, f.detail) for f in findings)


# Scanning a text made of parts (the messages of a chat) through the cache

BOUNDARY_CHARS = 100  # of each message on either side of a boundary, for `boundary` detectors


@dataclass(slots=True)
class ScanStats:
    hits: int = 0
    misses: int = 0


class CachedScan:
    """Runs one detector on texts through the cache, counting hits and misses."""

    def __init__(self, detect: Any, key: str, cache: DetectorCache | None) -> None:
        self.detect = detect
        self.key = key
        self.cache = cache
        self.stats = ScanStats()

    def one(self, text: str) -> DetectorResult:
        if self.cache is None:
            result: DetectorResult = self.detect(text)
            return result
        digest = text_key(self.key, text)
        cached = self.cache.get(digest)
        if cached is not None:
            self.stats.hits += 1
            return cached
        self.stats.misses += 1
        result = self.detect(text)
        self.cache.put(digest, result)
        return result

    def parts(self, parts: list[str], split: str) -> DetectorResult:
        """The findings of the parts joined by newlines, scanning each part on its own.

        ``split`` says how: "whole" joins them and scans once; "parts" scans each part (for
        detectors whose matches never cross a line); "boundary" also scans the last and first
        BOUNDARY_CHARS of each pair of neighbouring parts, joined by a space, and keeps what crosses
        between them (a card number typed across two messages).
        """
        if split == "whole" or len(parts) < 2:
            return self.one("\n".join(parts))
        found: list[Finding] = []
        offset = 0
        for i, part in enumerate(parts):
            check_deadline()  # a chat of many messages: none scanned once the request's deadline passed
            found += shifted(self.one(part).findings, offset)
            if split == "boundary" and i + 1 < len(parts):
                found += self._boundary(part, parts[i + 1], offset)
            offset += len(part) + 1
        found.sort(key=lambda f: (f.start, f.end, f.type))
        return DetectorResult(tuple(found))

    def _boundary(self, left: str, right: str, offset: int) -> tuple[Finding, ...]:
        tail, head = left[-BOUNDARY_CHARS:], right[:BOUNDARY_CHARS]
        if not tail or not head:
            return ()
        edge = len(tail)  # the joining space, where the newline is in the whole text
        crossing = tuple(f for f in self.one(f"{tail} {head}").findings if f.start <= edge < f.end)
        return shifted(crossing, offset + len(left) - len(tail))
