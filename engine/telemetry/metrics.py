"""Prometheus metrics: what each worker counts, and the /metrics endpoint that adds up every worker's."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from dsl.ir import Graph
from dsl.types import Stage
from engine.approvals.store import ApprovalStore, ApprovalUnavailable
from engine.runtime.decision import Decision

# 0.1 ms to 1 s: a regex-only Check takes a fraction of a millisecond, a classifier's tens of them
CHECK_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TIMEOUT_CODE = "deadline_exceeded"
UNRECORDED_CODE = "audit_unavailable"  # Guard's error when the audit log could not take the record


class Metrics:
    """The metrics one process counts into ``registry`` (in multiprocess mode: into the shared
    directory). Every label value comes from a bounded set: loaded ruleset names, versions, rule
    names, detector kinds and approval queues, stages, outcomes, gRPC methods and status codes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.decisions = Counter(
            "palisade_decisions", "Checks decided", ["ruleset", "version", "stage", "outcome"], registry=r
        )
        self.matches = Counter("palisade_rule_matches", "Rules that matched", ["ruleset", "rule"], registry=r)
        self.check_seconds = Histogram(
            "palisade_check_duration_seconds",
            "A Check in Guard: evaluation, approvals and the audit append",
            ["ruleset", "stage"],
            buckets=CHECK_BUCKETS,
            registry=r,
        )
        self.over_budget = Counter(
            "palisade_checks_over_budget",
            "Checks slower than their ruleset's budget p95",
            ["ruleset"],
            registry=r,
        )
        self.unrecorded = Counter(
            "palisade_audit_unrecorded",
            "Checks answered by the error policy because the audit log could not take their record",
            ["ruleset"],
            registry=r,
        )
        detector = ["ruleset", "detector"]
        self.detector_errors = Counter("palisade_detector_errors", "Detector failures", detector, registry=r)
        self.detector_timeouts = Counter(
            "palisade_detector_timeouts", "Detector runs stopped at the deadline", detector, registry=r
        )
        self.detector_cache_hits = Counter(
            "palisade_detector_cache_hits", "Texts whose result came from the cache", detector, registry=r
        )
        self.detector_cache_misses = Counter(
            "palisade_detector_cache_misses", "Texts scanned, then cached", detector, registry=r
        )
        self.detector_seconds = Histogram(
            "palisade_detector_duration_seconds",
            "A detector run",
            detector,
            buckets=CHECK_BUCKETS,
            registry=r,
        )
        self.ruleset_info = Gauge(
            "palisade_ruleset_info",
            "The rulesets served (1) and replaced (0), with their content hash",
            ["ruleset", "version", "content_hash"],
            multiprocess_mode="max",
            registry=r,
        )
        self.budget = Gauge(
            "palisade_ruleset_budget_seconds",
            "A ruleset's declared budget p95",
            ["ruleset", "version"],
            multiprocess_mode="max",
            registry=r,
        )
        self.audit_records = Counter("palisade_audit_records", "Audit records committed", registry=r)
        self.audit_commit_seconds = Histogram(
            "palisade_audit_commit_duration_seconds",
            "One audit transaction (one fsync in sync mode)",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.audit_queue = Gauge(
            "palisade_audit_queue_depth", "Audit records waiting", multiprocess_mode="livesum", registry=r
        )
        self.serving_gauge = Gauge(
            "palisade_serving", "1 while every worker is SERVING", multiprocess_mode="livemin", registry=r
        )
        self.not_serving = Counter(
            "palisade_not_serving_periods", "Periods of NOT_SERVING (the audit log refused)", registry=r
        )
        self.not_serving_seconds = Counter(
            "palisade_not_serving_seconds", "Time spent NOT_SERVING, counted when it ends", registry=r
        )
        self.approvals = Counter(
            "palisade_approvals", "Approval transitions, by event", ["queue", "event"], registry=r
        )
        self.requests = Counter(
            "palisade_grpc_requests", "gRPC calls answered, by status code", ["method", "code"], registry=r
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}  # (metric, label values): its child
        self._budgets: dict[tuple[str, str], float] = {}
        self._served: set[tuple[str, str, str]] = set()
        self._down_since: float | None = None

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once (labels() validates and locks on every call)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def checked(self, stage: Stage, evaluated: Decision, decision: Decision, seconds: float) -> None:
        """Count one Check: its decision, matches and detectors, and its time against the budget."""
        name, version, child = decision.ruleset, decision.version, self._child
        child(self.decisions, name, version, stage.value, decision.outcome.label).inc()
        child(self.check_seconds, name, stage.value).observe(seconds)
        if seconds > self._budgets.get((name, version), float("inf")):
            child(self.over_budget, name).inc()
        for match in decision.matches:
            child(self.matches, name, match.rule).inc()
        if decision.errors and any(e.code == UNRECORDED_CODE for e in decision.errors):
            child(self.unrecorded, name).inc()
        if evaluated.detectors:
            self._detectors(evaluated)

    def _detectors(self, evaluated: Decision) -> None:
        timeouts = {e.source for e in evaluated.errors if e.code == TIMEOUT_CODE} if evaluated.errors else ()
        child = self._child
        for report in evaluated.detectors:
            labels = (evaluated.ruleset, report.kind)
            child(self.detector_seconds, *labels).observe(report.duration_us / 1e6)
            if report.node in timeouts:
                child(self.detector_timeouts, *labels).inc()
            elif report.error:
                child(self.detector_errors, *labels).inc()
            if report.cache_hits:
                child(self.detector_cache_hits, *labels).inc(report.cache_hits)
            if report.cache_misses:
                child(self.detector_cache_misses, *labels).inc(report.cache_misses)

    def loaded(self, graphs: Iterable[Graph]) -> None:
        """Serve these rulesets' info and budgets from now on; those replaced read 0."""
        graphs = list(graphs)
        served = {(g.name, g.version, g.content_hash) for g in graphs}
        for gone in self._served - served:
            self.ruleset_info.labels(*gone).set(0)
        for key in served:
            self.ruleset_info.labels(*key).set(1)
        self._served = served
        for graph in graphs:
            self._zeroes(graph)
        self._budgets = {(g.name, g.version): g.budget_p95_us / 1e6 for g in graphs if g.budget_p95_us}
        for (name, version), budget in self._budgets.items():
            self.budget.labels(name, version).set(budget)

    def _zeroes(self, graph: Graph) -> None:
        """Create the ruleset's series at zero, so that rates start from the first scrape and every
        series a dashboard asks for exists before its first event."""
        self.over_budget.labels(graph.name)
        self.unrecorded.labels(graph.name)
        counters = (self.detector_errors, self.detector_timeouts, self.detector_cache_hits)
        for kind in {node.kind for node in graph.detectors.values()}:
            for family in (*counters, self.detector_cache_misses):
                family.labels(graph.name, kind)
            self.detector_seconds.labels(graph.name, kind)

    def audit_committed(self, records: int, seconds: float, queued: int) -> None:
        self.audit_records.inc(records)
        self.audit_commit_seconds.observe(seconds)
        self.audit_queue.set(queued)

    def serving(self, ok: bool) -> None:
        """Count NOT_SERVING periods and their length."""
        now = time.monotonic()
        self.serving_gauge.set(int(ok))
        if not ok and self._down_since is None:
            self._down_since = now
            self.not_serving.inc()
        elif ok and self._down_since is not None:
            self.not_serving_seconds.inc(now - self._down_since)
            self._down_since = None

    def approval(self, event: str, queue: str) -> None:
        self._child(self.approvals, queue, event).inc()

    def answered(self, method: str, code: str) -> None:
        self._child(self.requests, method, code).inc()


class PendingApprovals:
    """A collector of the approvals pending now, by queue, read from the data directory's store when
    scraped (they are the store's, shared by every worker, not any one process's count)."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("palisade_approvals_pending", "Approvals pending now", labels=["queue"])
        try:
            store = ApprovalStore.open(self.data_dir)
        except ApprovalUnavailable:  # no store yet, or unreadable: say nothing rather than zero
            return
        try:
            for queue, count in store.pending_by_queue(int(time.time() * 1e6)).items():
                family.add_metric([queue], count)
        finally:
            store.close()
        yield family


def exposition_registry(directory: Path, data_dir: str) -> CollectorRegistry:
    """What /metrics serves: every worker's metrics from ``directory``, and the pending approvals."""
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(PendingApprovals(data_dir))
    return registry


def serve_endpoint(host: str, port: int, registry: CollectorRegistry) -> WSGIServer:
    """Serve ``registry`` at http://host:port/metrics in a thread of this process; returns the server."""
    server, _ = start_http_server(port, host, registry=registry)
    return server
