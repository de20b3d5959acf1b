"""Telemetry: Prometheus metrics and OpenTelemetry traces behind engine.runtime.observer, off by default."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dsl.ir import Graph
from dsl.types import Stage
from engine.config import ServeConfig
from engine.runtime.decision import Decision
from engine.runtime.observer import Attributes, Observer, install

if TYPE_CHECKING:  # imported when used: prometheus_client must see PROMETHEUS_MULTIPROC_DIR first
    from wsgiref.simple_server import WSGIServer

    from engine.telemetry.metrics import Metrics, PendingApprovals
    from engine.telemetry.tracing import Tracing

log = logging.getLogger("palisade.telemetry")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_DIR = "metrics"  # under the data directory: each worker's metric files, read by /metrics


class Telemetry(Observer):
    """The observer of a server process: counts into Prometheus metrics, traces into OpenTelemetry."""

    def __init__(self, metrics: Metrics | None, tracing: Tracing | None) -> None:
        self.metrics = metrics
        self.tracing = tracing

    def checked(
        self,
        stage: Stage,
        evaluated: Decision,
        decision: Decision,
        *,
        decision_id: str,
        started: float,
        recording: float,
    ) -> None:
        if self.metrics is not None:
            self.metrics.checked(stage, evaluated, decision, time.perf_counter() - started)
        if self.tracing is not None:
            self.tracing.checked(
                stage, evaluated, decision, decision_id=decision_id, started=started, recording=recording
            )

    def traced(self, headers: Iterable[tuple[str, str | bytes]]) -> AbstractContextManager[None]:
        return super().traced(headers) if self.tracing is None else self.tracing.traced(headers)

    def span(
        self, name: str, attributes: Attributes, *, decision_id: str = ""
    ) -> AbstractContextManager[Attributes]:
        if self.tracing is None:
            return super().span(name, attributes, decision_id=decision_id)
        return self.tracing.span(name, attributes, decision_id=decision_id)

    def loaded(self, graphs: Iterable[Graph]) -> None:
        if self.metrics is not None:
            self.metrics.loaded(graphs)

    def audit_committed(self, records: int, seconds: float, queued: int) -> None:
        if self.metrics is not None:
            self.metrics.audit_committed(records, seconds, queued)

    def serving(self, ok: bool) -> None:
        if self.metrics is not None:
            self.metrics.serving(ok)

    def approval(self, event: str, queue: str) -> None:
        if self.metrics is not None:
            self.metrics.approval(event, queue)

    def answered(self, method: str, code: str) -> None:
        if self.metrics is not None:
            self.metrics.answered(method, code)

    def http_error(self, front_door: str, status: int) -> None:
        if self.metrics is not None:
            self.metrics.http_error(front_door, status)

    def close(self) -> None:
        """Put the no-op observer back; flush the metrics counted, export the spans still queued."""
        install(Observer())
        if self.metrics is not None:
            self.metrics.close()
        if self.tracing is not None:
            self.tracing.close()


def metrics_dir(config: ServeConfig) -> Path:
    return Path(config.data_dir) / METRICS_DIR


def prepare_metrics(config: ServeConfig) -> None:
    """In the process that serves /metrics, before any worker starts: an empty metrics directory,
    named in the environment that workers inherit (prometheus_client's multiprocess mode)."""
    directory = metrics_dir(config)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def serve_metrics(config: ServeConfig) -> tuple[WSGIServer, PendingApprovals]:
    """Serve every worker's metrics at http://[metrics] address/metrics (after prepare_metrics);
    returns the server and the pending approvals' collector (close both when done)."""
    from engine.telemetry.metrics import PendingApprovals, exposition_registry, serve_endpoint  # noqa: PLC0415

    host, _, port = config.metrics.address.rpartition(":")
    pending = PendingApprovals(config)
    registry = exposition_registry(metrics_dir(config), pending)
    try:
        server = serve_endpoint(host.strip("[]"), int(port), registry)
    except OSError as exc:
        raise OSError(f"metrics: cannot bind {config.metrics.address}: {exc.strerror}") from None
    bound = f"{host}:{server.server_port}"
    log.info("metrics on http://%s/metrics", bound)
    return server, pending


def start_worker(config: ServeConfig) -> Telemetry | None:
    """Install this server process's observer for ``config`` ([metrics], [tracing]); None when both
    are off (the no-op observer stays). Metrics need prepare_metrics first, here or in the supervisor."""
    metrics = tracing = None
    if config.metrics.enabled:
        from prometheus_client import CollectorRegistry  # noqa: PLC0415

        from engine.telemetry.metrics import Metrics  # noqa: PLC0415

        metrics = Metrics(CollectorRegistry(auto_describe=False))
    if config.tracing.enabled:
        from engine.telemetry.tracing import Tracing, provider  # noqa: PLC0415

        tracing = Tracing(provider(config.tracing.sample_ratio), config.tracing.sample_ratio)
    if metrics is None and tracing is None:
        return None
    telemetry = Telemetry(metrics, tracing)
    install(telemetry)
    return telemetry


def worker_gone(config: ServeConfig, pid: int) -> None:
    """A worker exited: its live gauges (queue depth, serving) stop counting."""
    if config.metrics.enabled:
        from prometheus_client import multiprocess  # noqa: PLC0415

        multiprocess.mark_process_dead(pid, str(metrics_dir(config)))  # type: ignore[no-untyped-call]


@contextmanager
def observed(config: ServeConfig, *, endpoint: bool, observe: bool = True) -> Iterator[None]:
    """While inside: /metrics served from this process (``endpoint``, when [metrics] is on), and this
    process's Checks observed (``observe``); everything stopped and flushed on the way out."""
    served = None
    if endpoint and config.metrics.enabled:
        prepare_metrics(config)
        served = serve_metrics(config)
    telemetry = start_worker(config) if observe else None
    try:
        yield
    finally:
        if telemetry is not None:
            telemetry.close()
        if served is not None:
            server, pending = served
            server.shutdown()
            server.server_close()
            pending.close()
