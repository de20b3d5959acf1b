"""OpenTelemetry traces: a span per Check, with its evaluation, detectors and audit append, over OTLP."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision as Sampled
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes as SpanAttributes

from dsl.types import Stage
from engine.runtime.decision import Decision, DetectorReport
from engine.runtime.observer import Attributes

_PROPAGATOR = TraceContextTextMapPropagator()
_NEW_TRACE: AbstractContextManager[None] = nullcontext()  # no traceparent: the Check starts a trace
_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
SERVICE_NAME = "palisade"
CHECK_SPAN = "palisade.check"
DEFERRED = 1024  # Checks whose steps wait for the Check's own span, at most (the oldest go first)


def provider(sample_ratio: float | None, exporter: SpanExporter | None = None) -> TracerProvider:
    """A tracer provider exporting over OTLP, configured by the standard OTEL_* variables (endpoint,
    headers, protocol, service name, batch delays). ``sample_ratio`` samples that share of new
    traces and follows the caller's choice for the others; None: OTEL_TRACES_SAMPLER decides."""
    named = {} if "OTEL_SERVICE_NAME" in os.environ else {"service.name": SERVICE_NAME}
    sampler = None if sample_ratio is None else ChecksDrawn(sample_ratio)
    result = TracerProvider(sampler=sampler, resource=Resource.create(named))
    result.add_span_processor(BatchSpanProcessor(exporter or otlp_exporter()))
    return result


class ChecksDrawn(Sampler):
    """``ParentBased(TraceIdRatioBased(ratio))``, except for the span of a Check that starts a trace:
    Tracing.checked has drawn that one's sample already (the draw before the SDK is asked is what keeps
    an unsampled Check cheap), so it is sampled here; asking the ratio again would sample ratio**2."""

    def __init__(self, ratio: float) -> None:
        self.base = ParentBased(TraceIdRatioBased(ratio))

    def should_sample(  # noqa: PLR0917  (the SDK's signature)
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: SpanAttributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if name == CHECK_SPAN and not trace.get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Sampled.RECORD_AND_SAMPLE, attributes, trace_state)
        return self.base.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"ChecksDrawn{{{self.base.get_description()}}}"  # type: ignore[no-untyped-call]


def otlp_exporter() -> SpanExporter:
    """OTLP over gRPC, or over HTTP when OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL says http/protobuf."""
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

    return OTLPSpanExporter()


@dataclass(frozen=True, slots=True)
class _Step:
    """A span made inside a Check (an approval opened or consumed), kept until the Check's span exists."""

    name: str
    attributes: Attributes
    start_ns: int
    end_ns: int
    error: str  # the exception's type name; "" when the step succeeded


class Tracing:
    """Makes the spans of each Check once it ends, from the times the decision carries: nothing is
    traced while the Check runs, and an unsampled Check costs one sampling decision. Spans outside a
    Check (approvals answered, watched) are made as they happen, in the caller's trace."""

    def __init__(self, tracer_provider: TracerProvider, sample_ratio: float | None = None) -> None:
        self.provider = tracer_provider
        self.tracer: Tracer = tracer_provider.get_tracer("palisade")
        # the provider's ratio, when known: a new trace it would not sample is skipped before the SDK
        # is asked (its unsampled start_span costs about as much as a regex Check's evaluation)
        self.sample_ratio = sample_ratio
        self._deferred: dict[str, list[_Step]] = {}  # decision id: the steps made inside that Check
        self._lock = threading.Lock()

    def span(
        self, name: str, attributes: Attributes, *, decision_id: str = ""
    ) -> AbstractContextManager[Attributes]:
        """A span around the block: a child of the Check ``decision_id`` (made when its span is), or,
        without one, of the current context (the caller's trace, or a new one)."""
        return self._step(name, attributes, decision_id) if decision_id else self._live(name, attributes)

    @contextmanager
    def _live(self, name: str, attributes: Attributes) -> Iterator[Attributes]:
        span = self.tracer.start_span(name)
        try:
            yield attributes
        except Exception as exc:
            _failed(span, type(exc).__name__)
            raise
        finally:
            span.set_attributes(attributes)
            span.end()

    @contextmanager
    def _step(self, name: str, attributes: Attributes, decision_id: str) -> Iterator[Attributes]:
        started, error = time.time_ns(), ""
        try:
            yield attributes
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            step = _Step(name, attributes, started, time.time_ns(), error)
            with self._lock:
                self._deferred.setdefault(decision_id, []).append(step)
                if len(self._deferred) > DEFERRED:  # a Check that raised never claims its steps
                    del self._deferred[next(iter(self._deferred))]

    def _claim(self, decision_id: str) -> list[_Step]:
        with self._lock:
            return self._deferred.pop(decision_id, [])

    def traced(self, headers: Iterable[tuple[str, str | bytes]]) -> AbstractContextManager[None]:
        """Checks made inside are children of the ``traceparent`` in ``headers``, if one is there."""
        carrier = {k.lower(): v for k, v in headers if isinstance(v, str) and k.lower() in _TRACE_HEADERS}
        return _attached(_PROPAGATOR.extract(carrier)) if carrier else _NEW_TRACE

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
        steps = self._claim(decision_id) if self._deferred else ()
        unsampled = self.sample_ratio is not None and random.random() >= self.sample_ratio
        if unsampled and not trace.get_current_span().get_span_context().is_valid:
            return  # a new trace, and not one of the sampled share
        ended = time.perf_counter()
        offset_ns = time.time_ns() - time.perf_counter_ns()

        def ns(t: float) -> int:
            return int(t * 1e9) + offset_ns

        root = self.tracer.start_span(CHECK_SPAN, start_time=ns(started))
        if not root.is_recording():  # not sampled: nothing more to make
            return
        root.set_attributes(check_attributes(stage, decision, decision_id))
        parent = trace.set_span_in_context(root)
        self._evaluation(parent, evaluated, ns(started))
        audit = self.tracer.start_span("palisade.audit.append", context=parent, start_time=ns(recording))
        audit.set_attribute(
            "palisade.audit.recorded", not any(e.code == "audit_unavailable" for e in decision.errors)
        )
        audit.end(end_time=ns(ended))
        for step in steps:
            self._made(parent, step)
        root.end(end_time=ns(ended))

    def _made(self, parent: otel_context.Context, step: _Step) -> None:
        span = self.tracer.start_span(
            step.name, context=parent, start_time=step.start_ns, attributes=step.attributes
        )
        if step.error:
            _failed(span, step.error)
        span.end(end_time=step.end_ns)

    def _evaluation(self, parent: otel_context.Context, evaluated: Decision, start_ns: int) -> None:
        attributes = {
            "palisade.outcome": evaluated.outcome.label,
            "palisade.skipped_rules": list(evaluated.skipped_rules),
        }
        span = self.tracer.start_span(
            "palisade.evaluate", context=parent, start_time=start_ns, attributes=attributes
        )
        inside = trace.set_span_in_context(span)
        offset_ns = time.time_ns() - time.perf_counter_ns()
        for report in evaluated.detectors:
            self._detector(inside, report, int(report.started_s * 1e9) + offset_ns)
        span.end(end_time=start_ns + int(evaluated.duration_us * 1000))

    def _detector(self, parent: otel_context.Context, report: DetectorReport, start_ns: int) -> None:
        attributes: dict[str, Any] = {
            "palisade.detector.name": report.node,
            "palisade.detector.kind": report.kind,
            "palisade.detector.findings": len(report.findings),
            "palisade.detector.cache_hits": report.cache_hits,
        }
        if report.findings:
            attributes["gen_ai.security.risk.score"] = max(f.score for f in report.findings)
        span: Span = self.tracer.start_span(
            "palisade.detector", context=parent, start_time=start_ns, attributes=attributes
        )
        if report.error:
            span.set_status(Status(StatusCode.ERROR, "detector failed"))
        span.end(end_time=start_ns + int(report.duration_us * 1000))

    def close(self) -> None:
        """Export what is queued, then stop."""
        self.provider.shutdown()


def check_attributes(stage: Stage, decision: Decision, decision_id: str) -> dict[str, Any]:
    """A Check span's attributes: the proposed GenAI guardrail ones (``gen_ai.security.*``) and ours
    (``palisade.*``). Names, ids, hashes and numbers only, never the request's text."""
    scores = [f.score for r in decision.detectors for f in r.findings]
    attributes: dict[str, Any] = {
        "gen_ai.security.verdict": decision.outcome.label,
        "gen_ai.security.policy.id": decision.content_hash,
        "gen_ai.security.policy.name": decision.ruleset,
        "gen_ai.security.policy.version": decision.version,
        "gen_ai.security.rule.id": [m.rule for m in decision.deciding],
        "gen_ai.security.content.modified": decision.redacted is not None,
        "palisade.decision.id": decision_id,
        "palisade.stage": stage.value,
        "palisade.default_applied": decision.default_applied,
        "palisade.errors": [e.code for e in decision.errors],
    }
    if scores:
        attributes["gen_ai.security.risk.score"] = max(scores)
    return attributes


def _failed(span: Span, error: str) -> None:
    """Mark ``span`` failed with the exception's type (OpenTelemetry's ``error.type``), not its message."""
    span.set_attribute("error.type", error)
    span.set_status(Status(StatusCode.ERROR, error))


@contextmanager
def _attached(parent: otel_context.Context) -> Iterator[None]:
    token = otel_context.attach(parent)
    try:
        yield
    finally:
        otel_context.detach(token)
