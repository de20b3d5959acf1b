"""Several server processes on one port (SO_REUSEPORT), supervised: started, restarted, stopped."""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from typing import Any

from engine.config import ServeConfig
from engine.guard import StartError, check_rulesets
from engine.server.app import (
    SIGNALS,
    host_port,
    load_approvers,
    load_tls,
    on_signals,
    serve,
)
from engine.telemetry import observed, worker_gone

log = logging.getLogger("palisade.server")
_CTX = multiprocessing.get_context("spawn")
_READY_TIMEOUT_S = 120.0
_RESTART_DELAY_S = 1.0


def _worker(config_data: dict[str, Any], ready: Queue[tuple[int, str]]) -> None:
    """A worker process: serve until told to stop; report readiness (or why it failed) on ``ready``."""
    configure_logging()
    config = ServeConfig.model_validate(config_data)

    def report(listen: str) -> None:
        ready.put((os.getpid(), ""))

    try:
        code = serve(config, reuse_port=True, ready=report, parent_pid=os.getppid())
    except Exception as exc:
        log.error("worker failed: %s", exc)
        ready.put((os.getpid(), f"{type(exc).__name__}: {exc}"))
        code = 1
    sys.exit(code)


def configure_logging() -> None:
    """Palisade's own messages from INFO up; libraries' (presidio's device, ...) from WARNING up."""
    logging.basicConfig(level=logging.WARNING, format="palisade[%(process)d]: %(message)s", stream=sys.stderr)
    logging.getLogger("palisade").setLevel(logging.INFO)


def _reserve(listen: str) -> tuple[socket.socket, str]:
    """Bind (not listen) a SO_REUSEPORT socket, so that port 0 becomes one port all workers share."""
    host, port = host_port(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartError(f"listen: cannot bind {listen}: {exc.strerror}") from None
    bound = sock.getsockname()[1]
    return sock, f"[{host}]:{bound}" if family == socket.AF_INET6 else f"{host}:{bound}"


class Supervisor:
    """Starts N workers, restarts any that die unexpectedly, and forwards SIGTERM/SIGINT and SIGHUP."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.ready: Queue[tuple[int, str]] = _CTX.Queue()
        self.workers: list[SpawnProcess] = []
        self.stopping = threading.Event()
        self.told: set[int] = set()  # workers already sent SIGTERM (a second one could cut a shutdown short)

    def _spawn(self) -> SpawnProcess:
        process = _CTX.Process(target=_worker, args=(self.config.model_dump(), self.ready), daemon=False)
        # A worker inherits these signals blocked: one sent while it starts waits for its handlers.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        return process

    def start(self) -> None:
        """Start the workers and wait until every one serves; raise StartError if one cannot."""
        self.workers = [self._spawn() for _ in range(self.config.workers)]
        waiting, give_up = len(self.workers), time.monotonic() + _READY_TIMEOUT_S
        while waiting and not self.stopping.is_set():
            try:
                pid, error = self.ready.get(timeout=0.2)
            except queue.Empty:
                pid, error = 0, self._startup_problem(give_up)
            if error:
                self.stop()
                raise StartError(f"worker {pid or ''} failed to start: {error}")
            waiting -= bool(pid)

    def _startup_problem(self, give_up: float) -> str:
        dead = [p for p in self.workers if p.exitcode is not None]
        if dead:
            return f"worker {dead[0].pid} exited with {dead[0].exitcode}"
        return "timed out waiting for the workers" if time.monotonic() > give_up else ""

    def stop(self) -> None:
        """Ask every worker to shut down gracefully: one SIGTERM each, however often this is called."""
        self.stopping.set()
        for pid in self._serving():
            self.told.add(pid)
            os.kill(pid, signal.SIGTERM)

    def reload(self) -> None:
        """Pass SIGHUP on: every worker reloads its rulesets, approvers and TLS files
        (GuardServer.reload) and logs the result."""
        for pid in self._serving():
            os.kill(pid, signal.SIGHUP)

    def _serving(self) -> list[int]:
        """The pids of the workers alive and not yet told to stop."""
        return [p.pid for p in self.workers if p.pid is not None and p.pid not in self.told and p.is_alive()]

    def supervise(self) -> int:
        """Wait for the workers; replace one that dies before shutdown. Returns 0 if all exit cleanly."""
        while not self.stopping.is_set():
            wait([p.sentinel for p in self.workers], timeout=0.5)
            for i, process in enumerate(self.workers):
                if not process.is_alive() and not self.stopping.is_set():
                    log.error("worker %s exited with %s; restarting it", process.pid, process.exitcode)
                    worker_gone(self.config, process.pid or 0)
                    time.sleep(_RESTART_DELAY_S)
                    self.workers[i] = self._spawn()
        self.stop()  # again: a worker started while the first stop() ran has not been told yet
        for process in self.workers:
            process.join()
            if process.exitcode != 0:
                log.error("worker %s exited with %s during shutdown", process.pid, process.exitcode)
        return 0 if all(p.exitcode == 0 for p in self.workers) else 1


def serve_workers(config: ServeConfig, ready: Callable[[str], None] | None = None) -> int:
    """Serve with ``config.workers`` processes sharing one port; returns the exit status."""
    check_rulesets(config)  # here, so that bad rulesets fail before any worker starts (no model loaded)
    load_approvers(config)  # and a bad approvers file
    load_tls(config)  # or TLS file
    reserved, listen = _reserve(config.listen)
    supervisor = Supervisor(config.model_copy(update={"listen": listen}))
    on_signals(supervisor.stop, supervisor.reload)
    try:
        with observed(config, endpoint=True, observe=False):  # /metrics adds up the workers' metrics
            supervisor.start()
            if ready is not None:
                ready(listen)
            return supervisor.supervise()
    finally:
        reserved.close()
