"""Traces: the real OpenTelemetry SDK in process, and `palisade serve` exporting to a real OTLP receiver."""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import anyio
import grpc
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_client import BIN, client_environment
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from server_helpers import config, running, wait_for
from telemetry_helpers import RULESET, RULESETS, served, write_config

from dsl.types import Stage
from engine.approvals import Approval, Query, State
from engine.guard import Guard
from engine.http import litellm
from engine.mcp.checks import Caller, McpChecks
from engine.mcp.config import McpConfig
from engine.mcp.guarded import Guarded
from engine.protocol.request_codec import request_to_proto
from engine.protocol.wire import apb, apb_grpc, pb, pb_grpc
from engine.runtime.evaluator import Evaluator
from engine.runtime.observer import install
from engine.runtime.registry import compile_rulesets
from engine.runtime.request import request_from_dict
from engine.telemetry import Telemetry
from engine.telemetry.tracing import Tracing, provider

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SECRET = "zebra-7731"  # in the request's text: never in a span


def _check(target: str, text: str, metadata: list[tuple[str, str]]) -> pb.CheckResponse:
    message = request_to_proto(RULESET, request_from_dict({"stage": "input", "text": text}))
    with grpc.insecure_channel(target) as channel:
        response: pb.CheckResponse = pb_grpc.GuardStub(channel).Check(message, metadata=metadata, timeout=10)
        return response


Finished = Callable[[], tuple[ReadableSpan, ...]]


@pytest.fixture()
def spans() -> Iterator[Finished]:
    """This process traces into memory, sampling no new trace (ratio 0), only callers' sampled ones;
    yields what returns the spans finished so far."""
    exporter = InMemorySpanExporter()
    tracer_provider = provider(0.0, exporter)
    before = install(Telemetry(None, Tracing(tracer_provider, 0.0)))

    def finished() -> tuple[ReadableSpan, ...]:
        tracer_provider.force_flush()
        return exporter.get_finished_spans()

    try:
        yield finished
    finally:
        install(before)
        tracer_provider.shutdown()


def test_a_check_is_a_span_in_the_callers_trace_with_its_evaluation_detectors_and_audit(
    spans: Finished,
) -> None:
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"))
    with running(cfg) as server:
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        response = _check(
            f"127.0.0.1:{server.port}", f"ssn 123-45-6789 {SECRET}", [("traceparent", traceparent)]
        )
    named = {s.name: s for s in spans()}
    check, evaluate = named["palisade.check"], named["palisade.evaluate"]
    detector, audit = named["palisade.detector"], named["palisade.audit.append"]
    assert check.context is not None and check.parent is not None
    assert f"{check.context.trace_id:032x}" == TRACE_ID and f"{check.parent.span_id:016x}" == PARENT_ID
    assert evaluate.parent == check.context and audit.parent == check.context
    assert detector.parent == evaluate.context
    assert check.start_time is not None and detector.start_time is not None and check.end_time is not None
    assert check.start_time <= detector.start_time and audit.end_time == check.end_time
    attributes = dict(check.attributes or {})
    assert attributes["palisade.decision.id"] == response.decision_id  # the audit record's id too
    assert attributes["gen_ai.security.verdict"] == "block"
    assert attributes["gen_ai.security.policy.name"] == RULESET
    assert attributes["gen_ai.security.policy.version"] == "1.0.0"
    assert attributes["gen_ai.security.rule.id"] == ("no_ssn",)
    assert attributes["gen_ai.security.content.modified"] is False
    assert dict(detector.attributes or {})["palisade.detector.kind"] == "regex"
    everything = repr([(s.name, dict(s.attributes or {})) for s in named.values()])
    assert SECRET not in everything and "123-45-6789" not in everything


def test_unsampled_callers_and_unsampled_new_traces_make_no_spans(spans: Finished) -> None:
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"))
    with running(cfg) as server:
        target = f"127.0.0.1:{server.port}"
        _check(target, "hello", [("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-00")])  # caller: not sampled
        _check(target, "hello", [])  # a new trace, at a sample ratio of 0
    assert spans() == ()


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver: the collector's gRPC service, keeping what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.lock = threading.Lock()

    def Export(  # noqa: N802
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self.lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        with self.lock:
            return [
                ({a.key: a.value.string_value for a in rs.resource.attributes}, span)
                for request in self.requests
                for rs in request.resource_spans
                for scope in rs.scope_spans
                for span in scope.spans
            ]


@pytest.fixture()
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Receiver]:
    """A real OTLP receiver (gRPC) that the processes this test starts export to."""
    found = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(found, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    try:
        yield found
    finally:
        server.stop(0)


def test_palisade_serve_exports_its_spans_over_otlp_to_a_receiver(
    tmp_path: Path, receiver: _Receiver
) -> None:
    with served(write_config(tmp_path, tracing=True)) as (target, _):
        response = _check(
            target, f"a refund please {SECRET}", [("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01")]
        )
        wait_for(lambda: any(s.name == "palisade.check" for _, s in receiver.spans()))
    resource, check = next((r, s) for r, s in receiver.spans() if s.name == "palisade.check")
    assert resource["service.name"] == "palisade"
    assert check.trace_id.hex() == TRACE_ID and check.parent_span_id.hex() == PARENT_ID
    attributes = {a.key: a.value for a in check.attributes}
    assert attributes["palisade.decision.id"].string_value == response.decision_id
    assert attributes["gen_ai.security.verdict"].string_value == "fallback"
    names = {s.name for _, s in receiver.spans()}
    assert {"palisade.evaluate", "palisade.audit.append"} <= names
    assert SECRET not in repr(receiver.requests)


APPROVER, COMMENT = "ana-approver-5521", "ship-it-8812"  # the answer's names and text: never in a span


def _caller(trace_id: str) -> list[tuple[str, str]]:
    return [("traceparent", f"00-{trace_id}-{PARENT_ID}-01")]


def _tool_call(approval_id: str = "") -> pb.CheckRequest:
    tool = {"name": "shell.exec", "arguments": {"cmd": f"rm -rf /srv/{SECRET}"}}
    request = request_from_dict({"stage": "tool_call", "tool": tool, "approval_id": approval_id})
    return request_to_proto(RULESET, request)


def _in_trace(finished: tuple[ReadableSpan, ...], trace_id: str) -> dict[str, ReadableSpan]:
    return {s.name: s for s in finished if s.context is not None and f"{s.context.trace_id:032x}" == trace_id}


def test_approvals_opened_watched_answered_and_consumed_are_spans_in_the_callers_traces(
    spans: Finished,
) -> None:
    traces = {step: uuid.uuid4().hex for step in ("open", "watch", "answer", "again", "consume")}
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"))
    with running(cfg) as server, grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        guard, approvals = pb_grpc.GuardStub(channel), apb_grpc.ApprovalsStub(channel)
        escalated = guard.Check(_tool_call(), metadata=_caller(traces["open"]), timeout=10)
        approval_id = escalated.escalation.approval_id
        watching = approvals.Watch(
            apb.WatchApprovalsRequest(approval_id=approval_id), metadata=_caller(traces["watch"]), timeout=10
        )
        assert next(watching).event == "current"
        answer = apb.ResolveApprovalRequest(
            approval_id=approval_id, resolution=apb.RESOLUTION_APPROVE, approver=APPROVER, comment=COMMENT
        )
        approvals.Resolve(answer, metadata=_caller(traces["answer"]), timeout=10)
        assert [e.event for e in watching] == ["approved"]
        with pytest.raises(grpc.RpcError):
            approvals.Resolve(answer, metadata=_caller(traces["again"]), timeout=10)
        resumed = guard.Check(_tool_call(approval_id), metadata=_caller(traces["consume"]), timeout=10)
        assert resumed.outcome == pb.OUTCOME_ALLOW
    finished = spans()
    opened = _in_trace(finished, traces["open"])
    check, span = opened["palisade.check"], opened["palisade.approval.open"]
    assert span.parent == check.context  # inside the Check that opened it
    assert dict(span.attributes or {}) == {
        "palisade.approval.id": approval_id,
        "palisade.approval.queue": "sre-oncall",
        "palisade.approval.state": "pending",
        "palisade.approval.rule": "risky_tools",
        "gen_ai.security.policy.name": RULESET,
        "palisade.approval.result": "opened",
    }
    watched = _in_trace(finished, traces["watch"])["palisade.approval.watch"]
    assert watched.parent is not None and f"{watched.parent.span_id:016x}" == PARENT_ID
    expected = {
        "palisade.approval.id": approval_id,
        "palisade.approval.state": "approved",
        "palisade.approval.events": 2,
    }
    assert expected.items() <= dict(watched.attributes or {}).items()
    answered = _in_trace(finished, traces["answer"])["palisade.approval.answer"]
    assert answered.parent is not None and f"{answered.parent.span_id:016x}" == PARENT_ID
    attributes = dict(answered.attributes or {})
    assert (
        attributes["palisade.approval.result"] == "approved"
        and attributes["palisade.approval.id"] == approval_id
    )
    again = _in_trace(finished, traces["again"])["palisade.approval.answer"]
    assert dict(again.attributes or {})["palisade.approval.result"] == "already_resolved"
    assert again.status.status_code is StatusCode.ERROR
    assert dict(again.attributes or {})["error.type"] == "AlreadyResolved"
    resumed_trace = _in_trace(finished, traces["consume"])
    consumed = resumed_trace["palisade.approval.consume"]
    assert consumed.parent == resumed_trace["palisade.check"].context
    attributes = dict(consumed.attributes or {})
    assert (
        attributes["palisade.approval.result"] == "allow"
        and attributes["palisade.approval.id"] == approval_id
    )
    everything = repr([(s.name, dict(s.attributes or {})) for s in finished])
    assert APPROVER not in everything and COMMENT not in everything and SECRET not in everything


def test_an_mcp_call_waiting_for_its_approval_joins_the_trace_in_its_meta(spans: Finished) -> None:
    trace_id = uuid.uuid4().hex
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"))
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "shell.exec",
            "arguments": {"cmd": "uptime"},
            "_meta": {"traceparent": f"00-{trace_id}-{PARENT_ID}-01"},
        },
    }
    with Guard.open(cfg) as guard:
        checks = McpChecks(guard, cfg.limits, Caller(RULESET, "shell"))
        approver = threading.Thread(target=_approve_when_pending, args=(guard,))
        approver.start()
        passed = Guarded(checks, McpConfig(approval_wait_s=30)).request(call)
        approver.join()
    assert passed.forward is not None  # approved while it waited: passed on
    names = sorted(s.name for s in spans() if s.context and f"{s.context.trace_id:032x}" == trace_id)
    assert names == sorted(
        ["palisade.approval.open", "palisade.approval.watch", "palisade.approval.consume"]
        + ["palisade.check", "palisade.evaluate", "palisade.audit.append"] * 2
    )
    watched = _in_trace(spans(), trace_id)["palisade.approval.watch"]
    assert watched.parent is not None and f"{watched.parent.span_id:016x}" == PARENT_ID
    assert dict(watched.attributes or {})["palisade.approval.state"] == "approved"


def _approve_when_pending(guard: Guard) -> None:
    def pending() -> list[Approval]:
        return guard.approvals.query(Query(state=State.PENDING))

    wait_for(lambda: bool(pending()))
    guard.approvals.resolve(pending()[0].id, True, APPROVER, COMMENT)


def test_a_litellm_guardrail_call_joins_the_trace_in_its_headers(spans: Finished) -> None:
    trace_id = uuid.uuid4().hex
    http = {"enabled": True, "listen": "127.0.0.1:0", "ruleset": RULESET}
    cfg = config(rulesets=str(RULESETS), data_dir=tempfile.mkdtemp(prefix="palisade-telemetry-"), http=http)
    with running(cfg) as server:
        assert server.http is not None
        answered = httpx.post(
            f"http://127.0.0.1:{server.http.port}{litellm.PATH}",
            json={"texts": [f"I want a refund {SECRET}"], "input_type": "request"},
            headers={"traceparent": f"00-{trace_id}-{PARENT_ID}-01"},
            timeout=30,
        )
    assert answered.status_code == 200 and answered.json()["action"] == "BLOCKED"
    check = _in_trace(spans(), trace_id)["palisade.check"]
    assert check.parent is not None and f"{check.parent.span_id:016x}" == PARENT_ID
    assert dict(check.attributes or {})["gen_ai.security.verdict"] == "fallback"


def test_palisade_mcp_exports_a_calls_checks_in_the_trace_of_its_meta(
    tmp_path: Path, receiver: _Receiver
) -> None:
    trace_id = uuid.uuid4().hex
    command = [
        *("-m", "engine.cli.main", "mcp", "--config", str(write_config(tmp_path, tracing=True))),
        *("--ruleset", RULESET, "--", str(BIN / "mcp-server-time")),
    ]
    params = StdioServerParameters(
        command=sys.executable, args=command, env=client_environment(), cwd=str(tmp_path)
    )

    async def call() -> bool:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            meta = {"traceparent": f"00-{trace_id}-{PARENT_ID}-01"}
            result = await session.call_tool("get_current_time", {"timezone": "UTC"}, meta=meta)
            return bool(result.is_error)

    assert anyio.run(call) is False  # the proxy passed it on; its spans go out as it exits
    wait_for(lambda: any(s.trace_id.hex() == trace_id for _, s in receiver.spans()))
    in_trace = [s for _, s in receiver.spans() if s.trace_id.hex() == trace_id]
    check = next(s for s in in_trace if s.name == "palisade.check")
    assert check.parent_span_id.hex() == PARENT_ID
    assert {a.key: a.value.string_value for a in check.attributes}["palisade.stage"] == "tool_call"


def test_new_traces_are_sampled_at_the_ratio_not_at_its_square() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(provider(0.5, exporter), 0.5)
    graph = compile_rulesets(str(RULESETS))[(RULESET, "1.0.0")]
    decision = Evaluator(graph).evaluate(request_from_dict({"stage": "input", "text": "hello"}))
    now = time.perf_counter()
    for i in range(400):
        tracing.checked(Stage.INPUT, decision, decision, decision_id=str(i), started=now, recording=now)
    tracing.provider.force_flush()
    checks = [s for s in exporter.get_finished_spans() if s.name == "palisade.check"]
    tracing.close()
    assert 150 <= len(checks) <= 250  # 200 expected (sd 10); drawn twice at 0.5, about 100 were
