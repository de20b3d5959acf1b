"""Metrics in one process: a real GuardServer and Guard count into a real Prometheus registry."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from server_helpers import config, running
from telemetry_helpers import RULESET, RULESETS, traffic

from dsl.types import Stage
from engine.client.guard_client import GuardClient
from engine.runtime.evaluator import Evaluator
from engine.runtime.observer import Observer, install, observer
from engine.runtime.registry import compile_rulesets
from engine.runtime.request import request_from_dict
from engine.telemetry import Telemetry
from engine.telemetry.metrics import Metrics, PendingApprovals


@pytest.fixture()
def counted() -> Iterator[Counted]:
    """This process's observer counts into a fresh registry while the test runs."""
    counted = Counted(CollectorRegistry())
    before = install(Telemetry(counted.metrics, None))
    try:
        yield counted
    finally:
        install(before)
        counted.metrics.close()


class Counted:
    """A registry and the metrics counted into it; ``value`` reads a sample once the counts are flushed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.metrics = Metrics(registry, flush_s=3600)  # flushed by the test only

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        self.metrics.flush()
        return self.registry.get_sample_value(name, labels or {})


def test_checks_detectors_audit_approvals_and_calls_are_counted(counted: Counted) -> None:
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"))
    with running(cfg) as server:
        traffic(f"127.0.0.1:{server.port}", 6)
        with GuardClient(f"127.0.0.1:{server.port}") as client:
            pending = client.list_approvals(queue="sre-oncall", state="pending")
            client.resolve_approval(pending[0].id, approve=False, approver="ana", comment="no")
        value = counted.value
        block = {"ruleset": RULESET, "version": "1.0.0", "stage": "input", "outcome": "block"}
        assert value("palisade_decisions_total", block) == 2
        assert value("palisade_decisions_total", block | {"stage": "tool_call", "outcome": "escalate"}) == 1
        assert value("palisade_rule_matches_total", {"ruleset": RULESET, "rule": "refunds"}) == 2
        assert value("palisade_check_duration_seconds_count", {"ruleset": RULESET, "stage": "input"}) == 6
        assert (
            value("palisade_detector_duration_seconds_count", {"ruleset": RULESET, "detector": "regex"}) == 6
        )
        assert value("palisade_detector_errors_total", {"ruleset": RULESET, "detector": "regex"}) == 0
        assert value("palisade_audit_records_total") == 7 + 2  # the Checks, then opened and denied
        assert value("palisade_approvals_total", {"queue": "sre-oncall", "event": "opened"}) == 1
        assert value("palisade_approvals_total", {"queue": "sre-oncall", "event": "denied"}) == 1
        assert value("palisade_grpc_requests_total", {"method": "Check", "code": "NOT_FOUND"}) == 1
        assert value("palisade_grpc_requests_total", {"method": "Check", "code": "OK"}) == 7
        assert value("palisade_ruleset_budget_seconds", {"ruleset": RULESET, "version": "1.0.0"}) == 0.05
        assert value("palisade_serving") == 1


def test_pending_approvals_are_read_from_the_store_by_queue(counted: Counted) -> None:
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"))
    with running(cfg) as server:
        traffic(f"127.0.0.1:{server.port}", 1)
    samples = [s for family in PendingApprovals(cfg.data_dir).collect() for s in family.samples]
    assert [(s.labels, s.value) for s in samples] == [({"queue": "sre-oncall"}, 1)]


def test_a_check_over_its_budget_and_a_not_serving_period_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    graph = compile_rulesets(str(RULESETS))[(RULESET, "1.0.0")]
    metrics.loaded([graph])
    decision = Evaluator(graph).evaluate(request_from_dict({"stage": "input", "text": "hello"}))
    metrics.checked(Stage.INPUT, decision, decision, 0.049)
    metrics.checked(Stage.INPUT, decision, decision, 0.051)
    metrics.serving(False)
    metrics.serving(False)  # still the same period
    metrics.serving(True)
    metrics.close()
    assert registry.get_sample_value("palisade_checks_over_budget_total", {"ruleset": RULESET}) == 1
    assert registry.get_sample_value("palisade_not_serving_periods_total") == 1
    assert (registry.get_sample_value("palisade_not_serving_seconds_total") or 0) > 0


def test_counts_reach_the_registry_when_flushed_each_child_in_one_write() -> None:
    counted = Counted(CollectorRegistry())
    graph = compile_rulesets(str(RULESETS))[(RULESET, "1.0.0")]
    decision = Evaluator(graph).evaluate(request_from_dict({"stage": "input", "text": "hello"}))
    for seconds in (0.0002, 0.0002, 0.003):
        counted.metrics.checked(Stage.INPUT, decision, decision, seconds)
    labels = {"ruleset": RULESET, "stage": "input"}
    assert not counted.registry.get_sample_value("palisade_check_duration_seconds_count", labels)  # not yet
    assert counted.value("palisade_check_duration_seconds_count", labels) == 3
    assert counted.value("palisade_check_duration_seconds_sum", labels) == pytest.approx(0.0034)
    bucket = labels | {"le": "0.00025"}
    assert counted.value("palisade_check_duration_seconds_bucket", bucket) == 2
    assert counted.value("palisade_check_duration_seconds_bucket", labels | {"le": "0.005"}) == 3
    counted.metrics.close()


def test_a_reload_marks_the_replaced_version_as_no_longer_served() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    graph = compile_rulesets(str(RULESETS))[(RULESET, "1.0.0")]
    metrics.loaded([graph])
    metrics.loaded([])
    labels = {"ruleset": RULESET, "version": "1.0.0", "content_hash": graph.content_hash}
    assert registry.get_sample_value("palisade_ruleset_info", labels) == 0


def test_the_default_observer_does_nothing_and_is_the_one_installed() -> None:
    assert type(observer()) is Observer
    with observer().traced([("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")]):
        pass
