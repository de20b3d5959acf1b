"""Traces: the real OpenTelemetry SDK in process, and `palisade serve` exporting to a real OTLP receiver."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from server_helpers import config, running, wait_for
from telemetry_helpers import RULESET, RULESETS, served, write_config

from engine.protocol.request_codec import request_to_proto
from engine.protocol.wire import pb, pb_grpc
from engine.runtime.observer import install
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


def test_palisade_serve_exports_its_spans_over_otlp_to_a_receiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    try:
        with served(write_config(tmp_path, tracing=True)) as (target, _):
            response = _check(
                target, f"a refund please {SECRET}", [("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01")]
            )
            wait_for(lambda: any(s.name == "palisade.check" for _, s in receiver.spans()))
    finally:
        server.stop(0)
    resource, check = next((r, s) for r, s in receiver.spans() if s.name == "palisade.check")
    assert resource["service.name"] == "palisade"
    assert check.trace_id.hex() == TRACE_ID and check.parent_span_id.hex() == PARENT_ID
    attributes = {a.key: a.value for a in check.attributes}
    assert attributes["palisade.decision.id"].string_value == response.decision_id
    assert attributes["gen_ai.security.verdict"].string_value == "fallback"
    names = {s.name for _, s in receiver.spans()}
    assert {"palisade.evaluate", "palisade.audit.append"} <= names
    assert SECRET not in repr(receiver.requests)
