"""The Guard servicer: convert the request, evaluate under the call's deadline, convert the decision."""

from __future__ import annotations

import logging
import time
from typing import NoReturn

import grpc

from engine.approvals import ApprovalError, ApprovalGate, Gated
from engine.audit import AuditLog, AuditUnavailable
from engine.config import ServeConfig
from engine.decision import Decision
from engine.evaluator import Evaluator
from engine.ids import new_id
from engine.registry import Registry, UnknownRuleset
from engine.request import Request
from engine.server.request_codec import InvalidRequest, request_from_proto
from engine.server.response_codec import response_from_decision
from engine.server.wire import pb, pb_grpc

log = logging.getLogger("palisade.server")
# gRPC reports "no deadline" as a deadline at the end of time; anything this far off is none.
_NO_DEADLINE_S = 365 * 24 * 3600.0


class GuardServicer(pb_grpc.GuardServicer):
    """Thin: every rule of the service lives in the engine; this only adapts gRPC to it."""

    def __init__(self, registry: Registry, config: ServeConfig, audit: AuditLog, gate: ApprovalGate) -> None:
        self.registry = registry
        self.audit = audit
        self.gate = gate
        self.limits = config.limits
        self.margin_s = config.deadline_margin_ms / 1000
        self.default_timeout_s = config.default_timeout_ms / 1000 or None

    def Check(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> pb.CheckResponse:  # noqa: N802
        started = time.perf_counter()
        try:
            return self._check(request, context, started)
        except InvalidRequest as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except UnknownRuleset as exc:
            _abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
        except Exception:  # a bug here must cost one call, not the server, and must not leak details
            log.exception("check failed")
            _abort(context, grpc.StatusCode.INTERNAL, "internal error; the server log has the details")

    def _check(
        self, request: pb.CheckRequest, context: grpc.ServicerContext, started: float
    ) -> pb.CheckResponse:
        domain = request_from_proto(request, self.limits)
        evaluator = self.registry.get(request.ruleset, request.version)
        decision_id = new_id()
        evaluated = evaluator.evaluate(domain, timeout_s=self._timeout_s(context))
        gated = self._gated(evaluator, evaluated, domain, decision_id, started)
        decision = gated.decision
        # `audit excerpts N`: the request's texts, masked (fail closed: an error and no text)
        excerpt = evaluator.excerpter.excerpt(domain) if evaluator.excerpter is not None else None
        try:
            self.audit.append(decision, domain, decision_id, excerpt=excerpt)
        except AuditUnavailable as exc:  # no record, no ALLOW: the error policy, never allow
            log.error("decision %s not recorded: %s", decision_id, exc)
            message = "the audit log cannot be written; the decision was not recorded"
            decision = evaluator.error_decision("audit_unavailable", message, started, never_allow=True)
        return response_from_decision(
            decision,
            default=evaluator.graph.default,
            decision_id=decision_id,
            request_id=request.request_id,
            now_s=time.time(),
            server_us=(time.perf_counter() - started) * 1e6,
            approval=gated.approval,
        )

    def _gated(
        self, evaluator: Evaluator, decision: Decision, domain: Request, decision_id: str, started: float
    ) -> Gated:
        """The answer after approvals (opened, rejoined or resumed); fails closed when they cannot be kept."""
        try:
            return self.gate.apply(decision, domain, decision_id)
        except (ApprovalError, AuditUnavailable) as exc:
            log.error("decision %s: approvals unavailable: %s", decision_id, exc)
            message = "approvals cannot be kept now; the decision falls back to the error policy"
            return Gated(
                evaluator.error_decision("approvals_unavailable", message, started, never_allow=True)
            )

    def _timeout_s(self, context: grpc.ServicerContext) -> float | None:
        """The evaluation's share of the call's deadline: what remains, less time to send the reply."""
        remaining = context.time_remaining()
        if remaining is None or remaining > _NO_DEADLINE_S:
            return self.default_timeout_s
        return max(remaining - self.margin_s, 0.0)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    log.debug("check refused: %s: %s", code.name, details)
    context.abort(code, details)
