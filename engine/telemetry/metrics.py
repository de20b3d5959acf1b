"""Prometheus metrics: what each worker counts, and the /metrics endpoint that adds up every worker's."""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from dsl.ir import Graph
from dsl.types import Outcome, Stage
from engine.approvals.store import ApprovalStore, ApprovalUnavailable
from engine.config import ServeConfig
from engine.guard import open_approval_store
from engine.runtime.decision import Decision

log = logging.getLogger("palisade.telemetry")
# 0.1 ms to 1 s: a regex-only Check takes a fraction of a millisecond, a classifier's tens of them
CHECK_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TIMEOUT_CODE = "deadline_exceeded"
UNRECORDED_CODE = "audit_unavailable"  # Guard's error when the audit log could not take the record
FLUSH_S = 0.25  # how often a process adds what it counted to the shared files (how late /metrics is)
QUEUED = 100_000  # events waiting for the flush at most (a stalled flush drops the oldest, not memory)
# What a queued event is, its first item. An event is a flat tuple of plain strings and numbers (no
# enum, no Decision, no bound method, no tuple inside): the garbage collector stops tracking such a
# tuple at the first collection it survives, so the events that wait for the flush never reach its
# oldest generation, whose growth sets off the full collections that stop every thread of the server
# for tens of ms (benchmarks/TELEMETRY.md).
CHECKED, DETECTED, COMMITTED, APPROVAL, ANSWERED, HTTP_ERROR = range(6)


class Tally:
    """What one process counted since its last flush, kept in dicts and added to the metrics in one go:
    in multiprocess mode each write to a metric is a locked write to a memory-mapped file (2.5 us a
    counter, 6 us a histogram observation), and a Check makes four to ten of them, while a dict update
    costs a fraction of a microsecond. ``flush`` adds each child's total with one write. Not
    thread-safe: Metrics uses it under its flush lock only."""

    def __init__(self) -> None:
        self._counts: defaultdict[Any, float] = defaultdict(float)
        self._observed: dict[Any, list[float]] = {}  # child: [sum, count in each bucket]

    def inc(self, child: Any, amount: float = 1.0) -> None:
        self._counts[child] += amount

    def observe(self, child: Any, value: float) -> None:
        slot = self._observed.get(child)
        if slot is None:  # its buckets, as Histogram.observe reads them
            slot = self._observed[child] = [0.0] * (len(child._upper_bounds) + 1)
        slot[0] += value
        slot[1 + bisect_left(child._upper_bounds, value)] += 1

    def flush(self) -> None:
        counts, self._counts = self._counts, defaultdict(float)
        observed, self._observed = self._observed, {}
        for child, amount in counts.items():
            child.inc(amount)
        for child, (total, *buckets) in observed.items():
            _add_observations(child, total, buckets)


def _add_observations(child: Any, total: float, buckets: list[float]) -> None:
    """What ``Histogram.observe`` writes for many values at once: their sum, and each bucket's count
    (its non-cumulative value files, as prometheus_client keeps them)."""
    child._sum.inc(total)
    for value, count in zip(child._buckets, buckets, strict=True):
        if count:
            value.inc(count)


@dataclass(frozen=True, slots=True)
class _Row:
    """What a Check of one ruleset version, stage and outcome counts into."""

    decisions: Any
    seconds: Any
    over_budget: Any
    budget_s: float


class Metrics:
    """The metrics one process counts into ``registry`` (in multiprocess mode: into the shared
    directory). Every label value comes from a bounded set: loaded ruleset names, versions, rule
    names, detector kinds and approval queues, stages, outcomes, gRPC methods and status codes."""

    def __init__(self, registry: CollectorRegistry, flush_s: float = FLUSH_S) -> None:
        self.tally = Tally()
        # what the request threads hand over: a deque append is thread-safe and takes no lock of ours
        self._events: deque[tuple[Any, ...]] = deque(maxlen=QUEUED)
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_every, args=(flush_s,), daemon=True)
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
        self.http_errors = Counter(
            "palisade_http_errors",
            "Requests an HTTP front door could not check, by the HTTP status it answered",
            ["front_door", "code"],
            registry=r,
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}  # (metric, label values): its child
        self._rows: dict[tuple[str, str, Stage, Outcome], _Row] = {}  # a Check's children, by its kind
        self._flushing = threading.Lock()  # the tally is counted and flushed by one thread at a time
        self._budgets: dict[tuple[str, str], float] = {}
        self._served: set[tuple[str, str, str]] = set()
        self._down_since: float | None = None
        self._queued: int | None = None  # the audit queue's depth last reported, until flushed
        self._counts: tuple[Callable[..., None], ...] = (  # each kind of event's counting, by its number
            self._checked,
            self._detected,
            self._committed,
            partial(self._count, self.approvals),
            partial(self._count, self.requests),
            partial(self._count, self.http_errors),
        )
        self._flusher.start()

    def _flush_every(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self.flush()

    def flush(self) -> None:
        """Count the events handed over, then write the totals (``Tally.flush``)."""
        events, counts = self._events, self._counts
        with self._flushing:
            while events:
                event = events.popleft()
                counts[event[0]](event)
            self.tally.flush()
            queued, self._queued = self._queued, None
        if queued is not None:
            self.audit_queue.set(queued)

    def close(self) -> None:
        """Stop the flushing thread, and flush what is counted."""
        self._stop.set()
        self._flusher.join()
        self.flush()

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once (labels() validates and locks on every call)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def checked(self, stage: Stage, evaluated: Decision, decision: Decision, seconds: float) -> None:
        """Hand one Check over to the flushing thread, which counts it: a CHECKED event (the matched
        rules' names last) and a DETECTED one for each detector that ran; the Check's objects are not
        kept."""
        name, events = decision.ruleset, self._events
        unrecorded = bool(decision.errors) and any(e.code == UNRECORDED_CODE for e in decision.errors)
        head = (CHECKED, name, decision.version, str(stage), int(decision.outcome), seconds, unrecorded)
        events.append((*head, *[m.rule for m in decision.matches]) if decision.matches else head)
        if evaluated.detectors:
            _hand_over_detectors(events, name, evaluated)

    def _checked(self, event: tuple[Any, ...]) -> None:
        """Count one Check (its CHECKED event): its decision and matches, its time against the budget."""
        name, version, stage, outcome, seconds, unrecorded = event[1:7]
        tally, rows = self.tally, self._rows
        key = (name, version, stage, outcome)
        row = rows.get(key)
        if row is None:
            row = rows[key] = self._row(*key)
        tally.inc(row.decisions)
        tally.observe(row.seconds, seconds)
        if seconds > row.budget_s:
            tally.inc(row.over_budget)
        for rule in event[7:]:
            tally.inc(self._child(self.matches, name, rule))
        if unrecorded:
            tally.inc(self._child(self.unrecorded, name))

    def _row(self, name: str, version: str, stage: str, outcome: int) -> _Row:
        """The children a Check of this kind counts into, and its ruleset's budget (read now: a reload
        empties the rows after it changes the budgets)."""
        child = self._child
        return _Row(
            child(self.decisions, name, version, stage, Outcome(outcome).label),
            child(self.check_seconds, name, stage),
            child(self.over_budget, name),
            self._budgets.get((name, version), float("inf")),
        )

    def _detected(self, event: tuple[Any, ...]) -> None:
        """Count one detector run (its DETECTED event): its time, timeout or failure, and cache use."""
        _, name, kind, duration_us, timed_out, failed, hits, misses = event
        child, tally, labels = self._child, self.tally, (name, kind)
        tally.observe(child(self.detector_seconds, *labels), duration_us / 1e6)
        if timed_out:
            tally.inc(child(self.detector_timeouts, *labels))
        elif failed:
            tally.inc(child(self.detector_errors, *labels))
        if hits:
            tally.inc(child(self.detector_cache_hits, *labels), hits)
        if misses:
            tally.inc(child(self.detector_cache_misses, *labels), misses)

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
        self._rows = {}  # after the budgets: a row made from here on reads the new ones
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
        """Count an audit transaction (on the flushing thread: the audit writer only hands it over)."""
        self._events.append((COMMITTED, records, seconds, queued))

    def _committed(self, event: tuple[Any, ...]) -> None:
        _, records, seconds, queued = event
        self.tally.inc(self.audit_records, records)
        self.tally.observe(self.audit_commit_seconds, seconds)
        self._queued = queued

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
        self._events.append((APPROVAL, queue, event))

    def answered(self, method: str, code: str) -> None:
        self._events.append((ANSWERED, method, code))

    def http_error(self, front_door: str, status: int) -> None:
        self._events.append((HTTP_ERROR, front_door, str(status)))

    def _count(self, metric: Any, event: tuple[Any, ...]) -> None:
        """Count an APPROVAL, ANSWERED or HTTP_ERROR event: its label values follow its number."""
        self.tally.inc(self._child(metric, *event[1:]))


def _hand_over_detectors(events: deque[tuple[Any, ...]], name: str, evaluated: Decision) -> None:
    """Hand over a DETECTED event for each detector the Check ran."""
    timeouts = {e.source for e in evaluated.errors if e.code == TIMEOUT_CODE} if evaluated.errors else ()
    for r in evaluated.detectors:
        timed_out = r.node in timeouts
        events.append(
            (DETECTED, name, r.kind, r.duration_us, timed_out, bool(r.error), r.cache_hits, r.cache_misses)
        )


class PendingApprovals:
    """A collector of the approvals pending now, by queue, read when scraped from the approval store
    that ``config``'s workers share (the data directory's, or PostgreSQL's with ``[store] url``):
    they are the store's, not any one process's count. The store is opened at the first scrape."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._store: ApprovalStore | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("palisade_approvals_pending", "Approvals pending now", labels=["queue"])
        try:  # no store yet, or unreadable: say nothing rather than zero
            with self._lock:
                if self._store is None:
                    self._store = open_approval_store(self.config)
                pending = self._store.pending_by_queue(int(time.time() * 1e6))
        except ApprovalUnavailable as exc:
            log.warning("metrics: approvals pending not read: %s", exc)
            return
        for queue, count in pending.items():
            family.add_metric([queue], count)
        yield family

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def exposition_registry(directory: Path, pending: PendingApprovals) -> CollectorRegistry:
    """What /metrics serves: every worker's metrics from ``directory``, and the pending approvals."""
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(pending)
    return registry


def serve_endpoint(host: str, port: int, registry: CollectorRegistry) -> WSGIServer:
    """Serve ``registry`` at http://host:port/metrics in a thread of this process; returns the server."""
    server, _ = start_http_server(port, host, registry=registry)
    return server
