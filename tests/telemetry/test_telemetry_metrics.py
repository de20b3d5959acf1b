"""Metrics in one process: a real GuardServer and Guard count into a real Prometheus registry."""

from __future__ import annotations

import gc
import tempfile
import uuid
from collections.abc import Iterator

import grpc
import httpx
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from faults import writes_refused
from prometheus_client import CollectorRegistry
from server_helpers import config, running, wait_for
from telemetry_helpers import RULESET, RULESETS, traffic

from benchmarks.postgres_cluster import fresh_database, postgres_server
from dsl.types import Outcome, Stage
from engine.client.guard_client import GuardClient, GuardError
from engine.envoy.config import EnvoyConfig
from engine.envoy.processor import Exchange
from engine.http import litellm
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
    pending = PendingApprovals(cfg)
    samples = [s for family in pending.collect() for s in family.samples]
    pending.close()
    assert [(s.labels, s.value) for s in samples] == [({"queue": "sre-oncall"}, 1)]


def test_pending_approvals_are_read_from_postgresql_when_the_store_is_there() -> None:
    """With [store] url the approvals live in PostgreSQL, not in the data directory's SQLite file."""
    with postgres_server() as server:
        url = fresh_database(server)
        cfg = config(
            rulesets=str(RULESETS),
            data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"),
            store={"url": url},
        )
        with running(cfg) as guard_server, GuardClient(f"127.0.0.1:{guard_server.port}") as client:
            client.check(ruleset=RULESET, stage="tool_call", tool={"name": "shell.exec"})
            client.check(
                ruleset=RULESET, stage="tool_call", tool={"name": "shell.exec", "arguments": {"n": 2}}
            )
        pending = PendingApprovals(cfg)
        samples = [s for family in pending.collect() for s in family.samples]
        pending.close()
    assert [(s.labels, s.value) for s in samples] == [({"queue": "sre-oncall"}, 2)]


def test_an_approval_is_counted_expired_at_its_deadline_though_nobody_reads_it(counted: Counted) -> None:
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"))
    expired = {"queue": "release", "event": "expired"}
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}") as client:
        escalated = client.check(ruleset=RULESET, stage="tool_call", tool={"name": "deploy.now"})
        assert escalated.outcome is Outcome.ESCALATE  # due in 1 s; then no call reads the approvals
        wait_for(lambda: counted.value("palisade_approvals_total", expired) == 1)
    assert counted.value("palisade_approvals_total", {"queue": "release", "event": "opened"}) == 1


def test_a_watch_that_fails_is_counted_by_its_status_code(counted: Counted) -> None:
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"))
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(GuardError) as refused:
            list(client.watch_approvals(approval_id="no-such-approval", timeout=10))
        assert refused.value.code is grpc.StatusCode.NOT_FOUND
        escalated = client.check(ruleset=RULESET, stage="tool_call", tool={"name": "shell.exec"})
        assert escalated.escalation is not None
        approval_id = escalated.escalation.approval_id
        client.cancel_approval(approval_id, actor="ops", comment="not today")
        assert [e for e, _ in client.watch_approvals(approval_id=approval_id, timeout=10)] == ["current"]
    watched = {"method": "Watch"}
    assert counted.value("palisade_grpc_requests_total", watched | {"code": "NOT_FOUND"}) == 1
    assert counted.value("palisade_grpc_requests_total", watched | {"code": "OK"}) == 1


def test_detector_cache_hits_are_counted_through_the_server(counted: Counted) -> None:
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"))
    answer = f"write to someone-{uuid.uuid4().hex[:8]}@example.com"
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}") as client:
        outcomes = [client.check(ruleset=RULESET, stage="output", text=answer).outcome for _ in range(3)]
    assert outcomes == [Outcome.BLOCK] * 3
    labels = {"ruleset": RULESET, "detector": "pii"}
    assert counted.value("palisade_detector_cache_misses_total", labels) == 1
    assert counted.value("palisade_detector_cache_hits_total", labels) == 2


def test_a_not_serving_period_of_a_real_server_is_counted(counted: Counted) -> None:
    cfg = config(
        rulesets=str(RULESETS),
        data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"),
        audit={"durability": "sync", "retry_every_seconds": 0.05},
    )
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}") as client:
        with writes_refused():
            refused = client.check(ruleset=RULESET, text="hello")
            assert [e.code for e in refused.errors] == ["audit_unavailable"]
            assert counted.value("palisade_serving") == 0
        wait_for(lambda: counted.value("palisade_serving") == 1)
    assert counted.value("palisade_not_serving_periods_total") == 1
    assert (counted.value("palisade_not_serving_seconds_total") or 0) > 0
    assert counted.value("palisade_audit_unrecorded_total", {"ruleset": RULESET}) == 1


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


def test_the_events_waiting_for_the_flush_leave_the_garbage_collectors_lists() -> None:
    """Every queued event holds plain strings and numbers only, so the collector stops tracking it at
    its first collection: the Checks waiting for the flush never grow its oldest generation (which
    sets off the full collections that stop the server), and they are still counted in full."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, flush_s=3600)  # flushed by the test only
    graph = compile_rulesets(str(RULESETS))[(RULESET, "1.0.0")]
    text = "my SSN is 123-45-6789, I want a refund"
    decision = Evaluator(graph).evaluate(request_from_dict({"stage": "input", "text": text}))
    assert len(decision.matches) == 2 and decision.detectors  # rules and a detector to hand over
    metrics.checked(Stage.INPUT, decision, decision, 0.001)
    metrics.audit_committed(3, 0.002, 1)
    metrics.approval("opened", "sre-oncall")
    metrics.answered("Check", "OK")
    metrics.http_error("envoy", 400)
    gc.collect()
    queued = list(metrics._events)
    assert len(queued) == 4 + 1 + len(decision.detectors)
    assert [e for e in queued if gc.is_tracked(e)] == []
    metrics.close()
    value = registry.get_sample_value
    block = {"ruleset": RULESET, "version": "1.0.0", "stage": "input", "outcome": "block"}
    assert value("palisade_decisions_total", block) == 1
    for rule in ("no_ssn", "refunds"):
        assert value("palisade_rule_matches_total", {"ruleset": RULESET, "rule": rule}) == 1
    assert value("palisade_detector_duration_seconds_count", {"ruleset": RULESET, "detector": "regex"}) == 1
    assert value("palisade_audit_records_total") == 3
    assert value("palisade_approvals_total", {"queue": "sre-oncall", "event": "opened"}) == 1
    assert value("palisade_grpc_requests_total", {"method": "Check", "code": "OK"}) == 1
    assert value("palisade_http_errors_total", {"front_door": "envoy", "code": "400"}) == 1


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


def test_requests_the_http_front_doors_cannot_check_are_counted_by_status(counted: Counted) -> None:
    http = {"enabled": True, "listen": "127.0.0.1:0", "ruleset": RULESET}
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"), http=http)
    with running(cfg) as server:
        assert server.http is not None
        url = f"http://127.0.0.1:{server.http.port}{litellm.PATH}"
        assert httpx.post(url, json={"texts": ["hi"]}, timeout=30).status_code == 400  # no input_type
        unknown = {"x-palisade-ruleset": "no_such_ruleset"}
        call = {"texts": ["hi"], "input_type": "request"}
        assert httpx.post(url, json=call, headers=unknown, timeout=30).status_code == 404
        assert httpx.post(url, json=call, timeout=30).status_code == 200  # checked: not an error
        exchange = Exchange(server.guard, EnvoyConfig(ruleset=RULESET), cfg.limits)
        names = {":method": "POST", ":path": "/v1/chat/completions"}
        values = [base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in names.items()]
        exchange.answer(
            ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=base_pb2.HeaderMap(headers=values)))
        )
        body = ep.HttpBody(body=b"{not json", end_of_stream=True)
        assert exchange.answer(ep.ProcessingRequest(request_body=body)).immediate_response.status.code == 400
    errors = "palisade_http_errors_total"
    assert counted.value(errors, {"front_door": "litellm", "code": "400"}) == 1
    assert counted.value(errors, {"front_door": "litellm", "code": "404"}) == 1
    assert counted.value(errors, {"front_door": "litellm", "code": "200"}) is None
    assert counted.value(errors, {"front_door": "envoy", "code": "400"}) == 1
