"""Files the audit log hands out (keys, witnessed checkpoints): created whole, durable, never half-written."""

from __future__ import annotations

import os
import secrets
from contextlib import suppress
from pathlib import Path


def create_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file at ``path`` atomically and durably (a temporary file, fsynced, then
    linked into place and the directory fsynced); if ``path`` exists already (another process made
    it first), keep that one. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
