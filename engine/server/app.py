"""The Guard server: Guard, Approvals, health and reflection on one gRPC server, and its process."""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from types import FrameType, TracebackType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dsl.diagnostics import CompileError
from engine.approvals import ApprovalError
from engine.approvals.approvers import Approvers, ApproversError
from engine.audit import AuditUnavailable
from engine.config import ServeConfig
from engine.envoy.server import EnvoyServer
from engine.guard import Guard, StartError, check_rulesets
from engine.http.server import HttpServer
from engine.protocol.wire import APPROVALS_SERVICE, GUARD_SERVICE, apb, pb
from engine.runtime.heap import freeze_heap
from engine.runtime.observer import observer
from engine.runtime.registry import Registry
from engine.runtime.rollout import load_plans, rollout_path
from engine.server.admission import Admission
from engine.server.approvals_servicer import ApprovalsServicer
from engine.server.guard_servicer import GuardServicer
from engine.server.handlers import add_servicer
from engine.server.tls import ServerTls, TlsError
from engine.telemetry import observed

log = logging.getLogger("palisade.server")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_NAMES = (GUARD_SERVICE, APPROVALS_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
RELOAD_SIGNAL = signal.SIGHUP
SIGNALS = STOP_SIGNALS | {RELOAD_SIGNAL}  # what a server process handles (blocked while a worker starts)
_PARENT_POLL_S = 0.5
# Python runs signal handlers in the main thread only, when it next runs bytecode. A signal that the
# kernel hands to another thread (a gRPC poller, say) leaves a main thread blocked in an untimed wait
# asleep, and the SIGHUP (or SIGTERM) is never handled: so the main thread wakes this often.
_SIGNAL_WAKE_S = 0.2
# Health and reflection run on a pool of their own, outside the request pool (engine/server/admission.py);
# each health Watch stream holds one of its threads while it lasts.
SERVICE_THREADS = 8
# How often a worker expires the approvals past their deadline, so that the expiry is recorded (and
# counted) when it happens rather than when someone next reads the approvals.
EXPIRE_EVERY_S = 1.0


def load_tls(config: ServeConfig) -> ServerTls | None:
    """The `[tls]` credentials, or None for a plaintext server."""
    if not config.tls.enabled:
        return None
    try:
        return ServerTls(config.tls)
    except TlsError as exc:
        raise StartError(f"tls: {exc}") from None


def load_approvers(config: ServeConfig) -> Approvers | None:
    """The approvers file's approvers, or None when the config names none."""
    if not config.approvals.approvers_file:
        return None
    try:
        return Approvers.load(config.approvals.approvers_file)
    except ApproversError as exc:
        raise StartError(f"approvals: approvers_file: {exc}") from None


class GuardServer:
    """One gRPC server process's worth of Guard: its thread pools, registry, health and reflection.

    Check and Approvals calls run on the admission's request pool, through its gate, which enforces
    ``max_concurrent_rpcs`` for them; health and reflection run on the server's own small pool and
    are counted by no limit, so that they answer however loaded (or stalled) the request pool is."""

    def __init__(self, config: ServeConfig, *, reuse_port: bool = False) -> None:
        self.config = config
        self.tls = load_tls(config)
        approvers = load_approvers(config)
        self.health = health.HealthServicer()
        self.guard = Guard.open(config, on_health=self._set_serving)
        self.admission = Admission(config)
        self.service_pool = ThreadPoolExecutor(SERVICE_THREADS, thread_name_prefix="palisade-service")
        self.server = self._build(reuse_port, approvers)
        self.port = 0
        self.envoy: EnvoyServer | None = None  # Envoy's ext_proc ([envoy]), over the same Guard
        if config.envoy.enabled:
            self.envoy = EnvoyServer(self.guard, config.envoy, config.limits, reuse_port=reuse_port)
        self.http: HttpServer | None = None  # LiteLLM's Generic Guardrail API ([http]), same Guard
        if config.http.enabled:
            self.http = HttpServer(self.guard, config.http, config.limits, reuse_port=reuse_port)
        self._expiring = threading.Event()  # set: the expiry thread stops
        self._expirer = threading.Thread(target=self._expire_every, name="palisade-expiry", daemon=True)

    @property
    def registry(self) -> Registry:
        """The rulesets served now (a reload replaces them whole)."""
        return self.guard.registry

    @property
    def approvers(self) -> Approvers | None:
        """Who may answer approvals now (None: anyone; a reload rereads the file)."""
        return self.approvals_servicer.approvers

    def _build(self, reuse_port: bool, approvers: Approvers | None) -> grpc.Server:
        config = self.config
        options = [
            ("grpc.max_receive_message_length", config.limits.max_request_bytes),
            ("grpc.so_reuseport", int(reuse_port)),
        ]
        server = grpc.server(self.service_pool, options=options)  # no limit: the gate counts its calls
        admission = self.admission
        guard = GuardServicer(self.guard, config, admission.delay)
        add_servicer(server, guard, pb.DESCRIPTOR.services_by_name["Guard"], admission, guard.delay)
        self.approvals_servicer = ApprovalsServicer(self.guard.approvals, approvers, admission.stopping)
        add_servicer(server, self.approvals_servicer, apb.DESCRIPTOR.services_by_name["Approvals"], admission)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(SERVICE_NAMES, server)
        return server

    def start(self) -> int:
        """Bind and start serving; returns the port (the chosen one when the config says port 0)."""
        try:
            if self.tls is None:
                self.port = self.server.add_insecure_port(self.config.listen)
            else:
                self.port = self.server.add_secure_port(self.config.listen, self.tls.credentials)
        except RuntimeError as exc:
            raise StartError(f"listen: cannot bind {self.config.listen}: {exc}") from None
        if not self.port:
            raise StartError(f"listen: cannot bind {self.config.listen}")
        self.server.start()
        if self.envoy is not None:
            self.envoy.start()
        observer().loaded(e.graph for e in self.registry)
        if self.http is not None:
            self.http.start()
        self._set_serving(self.guard.healthy)
        self._expirer.start()
        return self.port

    def _expire_every(self) -> None:
        while not self._expiring.wait(EXPIRE_EVERY_S):
            try:
                self.guard.approvals.expire_due()
            except (ApprovalError, AuditUnavailable) as exc:  # the next read (or round) expires them
                log.debug("approvals: expiry postponed: %s", exc)

    def reload(self) -> bool:
        """Read the rulesets, the approvers file and the TLS files anew (SIGHUP); True when all loaded.

        Each is replaced only when it loads whole, from the next call on (calls in flight finish
        with what they started with); otherwise what is served stays as it was and the log says
        why: a bad ruleset never replaces a good one, and a broken approvers file never lets
        anyone answer approvals."""
        loaded = [self._reload_rulesets(), self._reload_approvers(), self._reload_tls()]
        return all(loaded)

    def _reload_rulesets(self) -> bool:
        try:
            graphs = check_rulesets(self.config)
            plans = load_plans(rollout_path(self.config.data_dir))  # the rollout plans (palisade rollout)
            registry = Registry.of(graphs, self.config.detector_settings, self.guard.detector_pool, plans)
            registry.warm()  # before it is served: a detector that cannot warm up refuses the reload
            registry = self.guard.released(registry, self.config.rulesets)  # approvals, as `palisade rollout`
        except CompileError as exc:
            count = len(exc.diagnostics)
            log.error("reload refused, serving the rulesets as before: %d error(s)\n%s", count, exc)
            return False
        except Exception as exc:  # no ruleset left, a model that cannot load or warm up, an unreadable file
            log.error("reload refused, serving the rulesets as before: %s", exc)
            return False
        before, self.guard.registry = self.registry, registry
        observer().loaded(e.graph for e in registry)
        served = ", ".join(f"{name} {version}" for name, version in sorted(registry.by_key))
        served += "".join(f"; {name}: {plan.data()}" for name, plan in sorted(registry.plans.items()))
        log.info("reloaded %d ruleset(s): %s", len(registry.by_key), served)
        _warn_changed_in_place(before, registry)
        return True

    def _reload_approvers(self) -> bool:
        if self.approvers is None:  # the config names no file: nothing to read
            return True
        try:
            approvers = load_approvers(self.config)
        except StartError as exc:
            log.error("reload refused, keeping the approvers as before: %s", exc)
            return False
        if approvers is not None:  # always, since the config named a file at start
            self.approvals_servicer.approvers = approvers
            log.info("reloaded the approvers file: %d approver(s)", len(approvers.by_digest))
        return True

    def _reload_tls(self) -> bool:
        if self.tls is None:
            return True
        try:
            self.tls.reload()
        except TlsError as exc:
            log.error("reload refused, keeping the TLS certificate as before: %s", exc)
            return False
        log.info("reloaded the TLS files: new connections get them")
        return True

    def _set_serving(self, ok: bool) -> None:
        """Health follows the audit log: no durable record, no service (NOT_SERVING)."""
        for service in ("", GUARD_SERVICE):
            self.health.set(service, SERVING if ok else NOT_SERVING)
        observer().serving(ok)

    def stop(self, grace_s: float | None = None) -> None:
        """Refuse new calls, let the ones in flight finish (up to ``grace_s``), then release everything.
        Calls waiting for a worker thread and Watch streams end at once, with UNAVAILABLE saying why."""
        self.health.enter_graceful_shutdown()
        self.admission.close()
        stopped = self.server.stop(grace_s)
        if self.envoy is not None:
            self.envoy.stop(grace_s)
        if self.http is not None:
            self.http.stop(grace_s)
        self.admission.drain(grace_s)
        stopped.wait()
        self.admission.pool.shutdown(wait=True)
        self.service_pool.shutdown(wait=True)
        self._expiring.set()
        if self._expirer.is_alive():
            self._expirer.join()
        self.guard.close()  # after the pool (a Watch may be ending its last poll): flush, sign, release

    def __enter__(self) -> GuardServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(0)


def _warn_changed_in_place(before: Registry, after: Registry) -> None:
    """Warn about each ruleset version whose rules changed while its version string did not."""
    for key in sorted(after.by_key.keys() & before.by_key.keys()):
        was, now = before.by_key[key].graph.content_hash, after.by_key[key].graph.content_hash
        if was != now:
            log.warning(
                "ruleset %s %s changed without a new version (content %s, was %s): its decisions now"
                " name the same version for other rules, and only the content hash tells them apart",
                *key, now, was,
            )  # fmt: skip


def host_port(listen: str) -> tuple[str, int]:
    """Split HOST:PORT ([::1]:PORT for IPv6)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise StartError(f"listen: expected HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def on_signals(stop: Callable[[], None], reload: Callable[[], None]) -> None:
    """SIGTERM and SIGINT call ``stop``, SIGHUP ``reload`` (main thread only); deliver any that
    arrived while they were blocked."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if signum == RELOAD_SIGNAL:
            log.info("received SIGHUP: reloading")
            reload()
            return
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop()

    for signum in SIGNALS:
        signal.signal(signum, handle)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def _watch_parent(parent_pid: int, stopping: threading.Event) -> None:
    """Stop when the parent (a supervisor) is gone, so that a killed supervisor leaves no orphans."""
    while not stopping.wait(_PARENT_POLL_S):
        if os.getppid() != parent_pid:
            log.warning("supervisor %d is gone: shutting down", parent_pid)
            stopping.set()


class Reloader:
    """Reloads a server (rulesets, approvers, TLS files) in a thread of its own when asked (SIGHUP).
    Requests that arrive during a reload make one more reload after it, never two at once; requests
    made before ``start`` wait for it."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[None] = queue.SimpleQueue()  # put() is safe in a signal handler

    def request(self) -> None:
        self._requests.put(None)

    def start(self, server: GuardServer) -> None:
        threading.Thread(target=self._run, args=(server,), name="palisade-reload", daemon=True).start()

    def _run(self, server: GuardServer) -> None:
        while True:
            self._requests.get()
            with suppress(queue.Empty):
                while True:
                    self._requests.get_nowait()
            if server.reload():
                freeze_heap()


def serve(
    config: ServeConfig,
    *,
    reuse_port: bool = False,
    ready: Callable[[str], None] | None = None,
    parent_pid: int | None = None,
) -> int:
    """Run one server process until SIGTERM or SIGINT (or its supervisor dies); shut down gracefully.
    SIGHUP reloads the rulesets, the approvers file and the TLS files (GuardServer.reload)."""
    stopping, reloader = threading.Event(), Reloader()
    on_signals(stopping.set, reloader.request)
    if parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(parent_pid, stopping), daemon=True).start()
    with observed(config, endpoint=parent_pid is None):
        return _serve(config, reuse_port, ready, stopping, reloader)


def _serve(
    config: ServeConfig,
    reuse_port: bool,
    ready: Callable[[str], None] | None,
    stopping: threading.Event,
    reloader: Reloader,
) -> int:
    server = GuardServer(config, reuse_port=reuse_port)
    reloader.start(server)
    port = server.start()
    freeze_heap()
    host, _ = host_port(config.listen)
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log.info("worker %d serving %d ruleset(s) on %s", os.getpid(), len(server.registry.by_key), listen)
    if server.envoy is not None:
        log.info("worker %d serving Envoy's ext_proc on %s:%d", os.getpid(), host, server.envoy.port)
    if server.http is not None:
        log.info("worker %d serving LiteLLM's guardrail API on %s:%d", os.getpid(), host, server.http.port)
    if server.approvers is None:
        log.warning("approvals: no approvers_file, so any caller can answer an approval under any name")
    if ready is not None:
        ready(listen)
    while not stopping.wait(_SIGNAL_WAKE_S):  # see _SIGNAL_WAKE_S
        pass
    server.stop(config.shutdown_grace_s)
    for signum in SIGNALS:  # a late second signal (Ctrl-C reaches workers too) must not cut the exit
        signal.signal(signum, signal.SIG_IGN)
    log.info("worker %d stopped", os.getpid())
    return 0
