"""Helpers for the server tests: configs, in-process servers, and `palisade serve` subprocesses."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.audit import AuditPaths
from engine.audit.keys import load_verifier
from engine.audit.store import Store
from engine.audit.verify import verify_log
from engine.config import Limits, ServeConfig
from engine.server.app import GuardServer

HERE = Path(__file__).resolve().parents[1] / "server"
ROOT = HERE.parents[1]
RULESETS = HERE / "rulesets"
BAD_RULESETS = HERE / "bad_rulesets"
LIMITS = Limits(max_request_bytes=64 * 1024, max_text_chars=10_000, max_messages=5, max_argument_depth=4)
STARTUP_TIMEOUT_S = 60.0


def config(**overrides: Any) -> ServeConfig:
    """A test server's config: the test rulesets, any free loopback port, small limits, a data
    directory of its own (the audit log lives there), and `sync` audit unless the test sets another
    durability (the tests read the log's store as soon as a Check is answered)."""
    base: dict[str, Any] = {
        "rulesets": str(RULESETS),
        "listen": "127.0.0.1:0",
        "limits": LIMITS,
        "data_dir": tempfile.mkdtemp(prefix="palisade-test-"),
    }
    audit = {"durability": "sync"} | dict(overrides.pop("audit", {}))
    return ServeConfig.model_validate(base | overrides | {"audit": audit})


@contextmanager
def running(cfg: ServeConfig) -> Iterator[GuardServer]:
    server = GuardServer(cfg)
    server.start()
    try:
        yield server
    finally:
        server.stop(0)


class ServeProcess:
    """A `palisade serve` subprocess; stderr is collected line by line while it runs."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        command = [sys.executable, "-m", "engine.cli.main", "serve", *args]
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_ready(self) -> str:
        """Wait for the readiness line; returns the HOST:PORT it serves on."""
        while True:
            line = self.lines.get(timeout=STARTUP_TIMEOUT_S)
            if line is None:
                raise AssertionError("server exited before it was ready:\n" + "".join(self.stderr))
            if line.startswith("palisade: ready on "):
                return line.split()[3]

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = STARTUP_TIMEOUT_S) -> int:
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        """What it has written to stderr so far."""
        return "".join(self.stderr)

    def output(self) -> str:
        self.wait()
        return self.log()

    def close(self) -> None:
        """Stop it if still running: SIGTERM (so that workers stop too), SIGKILL if that hangs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STARTUP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()


@contextmanager
def serve_process(*args: str) -> Iterator[ServeProcess]:
    process = ServeProcess(*args)
    try:
        yield process
    finally:
        process.close()


def log_verifies(data_dir: Path) -> bool:
    """Whether the audit log in ``data_dir`` verifies whole (chain, checkpoints) with its public key."""
    paths = AuditPaths.of(data_dir)
    store = Store.open_reader(paths.database)
    try:
        return verify_log(store, load_verifier(paths.public_key)).ok
    finally:
        store.close()


def worker_pids(server: ServeProcess) -> set[int]:
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    return {int(pid) for pid in children if is_worker(int(pid))}


def is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def wait_for(
    condition: Callable[[], bool], attempts: int = 300, context: Callable[[], str] = lambda: ""
) -> None:
    """Poll ``condition`` (bounded); fail if it never holds, with ``context()`` (a server's log, say)."""
    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached\n" + context())
