"""The witness: each checkpoint this process signs, handed to keepers outside the log (a folder, a command).

Whoever holds the database can cut its tail, checkpoints included, and recompute the head: only a
checkpoint kept elsewhere shows it (`palisade audit verify --against`). A witness keeps them all.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import threading
from collections import deque
from pathlib import Path

from engine.audit.checkpoint import Checkpoint
from engine.audit.config import AuditConfig
from engine.audit.files import create_file
from engine.audit.outage import Outage

log = logging.getLogger("palisade.audit")
BACKLOG = 64  # checkpoints waiting for a slow witness; beyond it the oldest go (each newer one covers them)
_FILE_MODE = 0o644  # checkpoints are public: signed, and hold no record


class Witness:
    """Hands each checkpoint to ``witness_dir`` (a file each, created atomically and fsynced) and to
    ``witness_command`` (run with it on stdin, killed after ``witness_timeout_seconds``), from a
    thread of its own: a slow or failing witness never holds up a decision. Each target's failures
    are logged when they start and when they end (engine/audit/outage.py), not once a checkpoint.
    """

    def __init__(self, directory: Path | None, command: list[str], timeout_s: float) -> None:
        self._directory = directory
        self._command = command
        self._timeout_s = timeout_s
        self._queue: deque[Checkpoint] = deque(maxlen=BACKLOG)
        self._ready = threading.Condition()
        self._closing = False
        self._outages = {target: _outage(target) for target in ("witness_dir", "witness_command")}
        self._thread = threading.Thread(target=self._run, name="palisade-audit-witness", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, config: AuditConfig) -> Witness | None:
        """The witness ``config`` asks for, or None when it names neither a folder nor a command."""
        if not config.witness_dir and not config.witness_command:
            return None
        directory = Path(config.witness_dir) if config.witness_dir else None
        return cls(directory, shlex.split(config.witness_command), config.witness_timeout_seconds)

    def push(self, checkpoint: Checkpoint) -> None:
        """Queue ``checkpoint`` for the witness; returns at once."""
        with self._ready:
            self._queue.append(checkpoint)
            self._ready.notify()

    def close(self) -> None:
        """Deliver what is queued (waiting about one delivery's time at most), then stop."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join(2 * self._timeout_s + 1)
        left = len(self._queue)
        if left:
            log.error("audit witness: %d checkpoint(s) not delivered at close", left)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closing:
                    self._ready.wait()
                if not self._queue:
                    return
                checkpoint = self._queue.popleft()
            self._deliver(checkpoint)

    def _deliver(self, checkpoint: Checkpoint) -> None:
        text = checkpoint.text()
        if self._directory is not None:
            name = f"{checkpoint.log_id}-{checkpoint.size:012d}.json"
            self._report("witness_dir", _write(self._directory / name, text))
        if self._command:
            self._report("witness_command", _run(self._command, text, self._timeout_s))

    def _report(self, target: str, problem: str) -> None:
        if problem:
            self._outages[target].fail(problem, 1)
        else:
            self._outages[target].recover()


def _outage(target: str) -> Outage:
    name = f"audit {target}"
    return Outage(
        log, f"{name} cannot take checkpoints", f"{name} takes checkpoints again", "undelivered checkpoint(s)"
    )


def _write(path: Path, text: str) -> str:
    """Create ``path`` holding ``text``; what went wrong, or ""."""
    try:
        create_file(path, text.encode("utf-8"), _FILE_MODE)
    except OSError as exc:
        return f"{exc.strerror} ({exc.filename or path})"
    return ""


def _run(command: list[str], text: str, timeout_s: float) -> str:
    """Run ``command`` with ``text`` on stdin; what went wrong (it failed, or did not end in time), or ""."""
    try:
        done = subprocess.run(
            command, input=text.encode("utf-8"), capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return f"{command[0]} did not finish within {timeout_s:g} s"
    except OSError as exc:
        return f"{command[0]}: {exc.strerror}"
    if done.returncode == 0:
        return ""
    said = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return f"exit status {done.returncode}" + (f": {said[-1][:200]}" if said else "")
