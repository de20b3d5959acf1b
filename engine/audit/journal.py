"""The audit journal: each record appended to a file in one write() before its answer; recovered on start."""

from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from engine.audit.chain import Chain
from engine.audit.errors import AuditUnavailable
from engine.audit.record import Entry, Record
from engine.audit.store import Store, file_lock
from engine.runtime.ids import new_id

log = logging.getLogger("palisade.audit")
JOURNAL_DIR = "journal"
SUFFIX = ".jnl"
RECOVERY_LOCK = "recovery.lock"
SEGMENT_BYTES = 8 * 1024 * 1024  # a segment this large is closed, and deleted once all its records are stored
RECOVER_BATCH = 512  # recovered records per transaction
# write(2) called with the interpreter lock held. os.write lets it go for the call, and taking it
# back can wait out another thread's switch interval (5 ms), all the while holding the audit
# writer's lock that every other Check's append then waits on: under load, slots held for
# milliseconds and calls shed. An append to the page cache takes microseconds.
_LIBC = ctypes.PyDLL(None, use_errno=True)
_WRITE = _LIBC.write
_WRITE.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
_WRITE.restype = ctypes.c_ssize_t


@dataclass(slots=True)
class _Segment:
    """One journal file this process writes: its descriptor (flock held), size, records not yet stored."""

    path: Path
    fd: int
    size: int = 0
    pending: int = 0


class Journal:
    """This process's journal: a run of segment files, each held under an exclusive flock while open.

    ``write`` puts one entry in the current segment with a single O_APPEND write() (no fsync: the
    page cache survives the death of the process, not of the machine). ``committed`` tells it that
    the oldest entries are now durable in the store; a full segment whose entries all are is
    deleted. A segment no live process holds (its flock is free) belongs to a process that died:
    ``recover`` puts its entries in the store at the next start. Thread-safe.
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._directory = directory
        self._segment_bytes = segment_bytes
        self._owner = new_id()  # UUIDv7: segment names sort by when their process started
        self._count = 0
        self._lock = threading.Lock()
        self._segments: deque[_Segment] = deque()
        self._current = self._open_segment()

    def write(self, line: bytes) -> None:
        """Append ``line`` (``encode``'s) with one write() call; AuditUnavailable (nothing appended) if
        it fails."""
        with self._lock:
            segment = self._current
            if segment.size >= self._segment_bytes:
                segment = self._rotate()
            try:
                written = _write(segment.fd, line)
            except OSError as exc:
                self._cut(segment)
                problem = f"the audit journal cannot be written: {exc.strerror} ({segment.path})"
                raise AuditUnavailable(problem) from None
            if written != len(line):
                self._cut(segment)
                raise AuditUnavailable(f"the audit journal cannot be written: a short write ({segment.path})")
            segment.size += written
            segment.pending += 1

    def committed(self, count: int) -> None:
        """The oldest ``count`` entries written are durable in the store: delete the segments they empty
        (after the lock: deleting a file that the kernel is writing back can wait on the disk, and
        every Check's append would wait with it)."""
        emptied: list[_Segment] = []
        with self._lock:
            while self._segments:
                segment = self._segments[0]
                taken = min(count, segment.pending)
                segment.pending -= taken
                count -= taken
                if segment.pending or segment is self._current:
                    break
                emptied.append(self._segments.popleft())
        for segment in emptied:
            _discard(segment)

    def close(self) -> None:
        """Close every segment; delete those whose entries are all in the store (the rest are recovered)."""
        with self._lock:
            while self._segments:
                segment = self._segments.popleft()
                if segment.pending:
                    os.close(segment.fd)
                    kept = "audit journal %s kept: %d record(s) not in the store"
                    log.error(kept, segment.path, segment.pending)
                else:
                    _discard(segment)

    # under the lock

    def _open_segment(self) -> _Segment:
        self._count += 1
        path = self._directory / f"{self._owner}-{self._count:06d}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: no one else can hold it
        segment = _Segment(path, fd)
        self._segments.append(segment)
        return segment

    def _rotate(self) -> _Segment:
        full = self._current
        self._current = self._open_segment()
        if not full.pending:
            self._segments.remove(full)
            _discard(full)
        return self._current

    def _cut(self, segment: _Segment) -> None:
        """Take a failed write's partial bytes off the end, so that the next write starts a whole line."""
        with suppress(OSError):
            os.ftruncate(segment.fd, segment.size)


def _write(fd: int, data: bytes) -> int:
    """os.write without letting the interpreter lock go (see _LIBC)."""
    written = int(_WRITE(fd, data, len(data)))
    if written < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return written


def _discard(segment: _Segment) -> None:
    with suppress(FileNotFoundError):
        segment.path.unlink()
    os.close(segment.fd)


def encode(entry: Entry) -> bytes:
    """One journal line: the CRC-32 of the JSON (8 hex digits), a space, the JSON of ``entry``, a newline."""
    fields = [entry.decision_id, entry.time, entry.outcome, entry.ruleset, entry.principal]
    payload = json.dumps([*fields, entry.rules, entry.segments], ensure_ascii=False, separators=(",", ":"))
    data = payload.encode()
    return b"%08x %s\n" % (zlib.crc32(data), data)


def decode(line: bytes) -> Entry | None:
    """The entry of one whole journal line; None if it is torn or damaged (its CRC does not match)."""
    crc, _, data = line.partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(data):
            return None
        values = json.loads(data)
        decision_id, time, outcome, ruleset, principal, rules, segments = values
        return Entry(decision_id, time, outcome, ruleset, principal, tuple(rules), tuple(segments))
    except (ValueError, TypeError):
        return None


def read_segment(path: Path, data: bytes) -> list[Entry]:
    """The entries of a segment's bytes, in order, up to the first torn or damaged line (logged)."""
    entries: list[Entry] = []
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], 1):  # the last piece has no newline: empty, or torn
        entry = decode(line)
        if entry is None:
            log.warning(
                "audit journal %s: line %d is damaged; the %d line(s) from it are skipped",
                path,
                number,
                len(lines) - number,
            )
            return entries
        entries.append(entry)
    if lines[-1]:
        log.warning("audit journal %s ends in a torn line (%d byte(s)); skipped", path, len(lines[-1]))
    return entries


@contextmanager
def orphaned(directory: Path) -> Iterator[list[Entry]]:
    """The entries of the segments in ``directory`` that no live process holds: each process's in the
    order it wrote them, processes in the order they started.

    Their flocks are held for the block; if it ends without an error the segments are deleted. One
    process recovers at a time: workers starting together all serve only once it is done."""
    held: list[tuple[Path, int]] = []
    with file_lock(directory / RECOVERY_LOCK), _closing(held):
        for path in sorted(directory.glob(f"*{SUFFIX}")):
            fd = _claim(path)
            if fd is not None:
                held.append((path, fd))
        entries = [entry for path, fd in held for entry in read_segment(path, _read(fd))]
        yield entries
        for path, _ in held:
            path.unlink(missing_ok=True)


@contextmanager
def _closing(held: list[tuple[Path, int]]) -> Iterator[None]:
    try:
        yield
    finally:
        for _, fd in held:
            os.close(fd)


def _claim(path: Path) -> int | None:
    """A descriptor of ``path`` with its flock taken; None if a live process holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != path.stat().st_ino:  # recovered and deleted meanwhile
            raise FileNotFoundError(path)
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    return fd


def _read(fd: int) -> bytes:
    with os.fdopen(os.dup(fd), "rb") as file:
        return file.read()


def recover(directory: Path, store: Store, chain: Chain) -> int:
    """Put the records of dead processes' journals that the store lacks into it, in order, and sign a
    checkpoint over them; returns how many were added. Raises what the store raises (then nothing is
    deleted, and the next start tries again)."""
    added = 0
    with orphaned(directory) as entries:
        for start in range(0, len(entries), RECOVER_BATCH):
            results, _ = chain.append(store, entries[start : start + RECOVER_BATCH])
            added += sum(isinstance(result, Record) for result in results)
        if added:
            chain.checkpoint(store)
            log.warning("audit journal: recovered %d record(s) answered before a crash", added)
    return added


def journal_dir(audit_dir: Path) -> Path:
    return audit_dir / JOURNAL_DIR
