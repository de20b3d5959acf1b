"""The Guard servicer: a CheckRequest in, Guard.check under the call's deadline, a CheckResponse out."""

from __future__ import annotations

import logging
import time
from typing import NoReturn

import grpc

from engine.config import ServeConfig
from engine.guard import Guard
from engine.protocol.request_codec import InvalidRequest, request_from_proto
from engine.protocol.response_codec import response_from_decision
from engine.protocol.wire import pb, pb_grpc
from engine.runtime.observer import observer
from engine.runtime.registry import UnknownRuleset
from engine.server.admission import Delay, done_working, time_left_s

log = logging.getLogger("palisade.server")


class GuardServicer(pb_grpc.GuardServicer):
    """Thin: the decision, its approvals and its audit record are Guard's; this adapts gRPC to it."""

    def __init__(self, guard: Guard, config: ServeConfig, delay: Delay) -> None:
        self.guard = guard
        self.limits = config.limits
        self.margin_s = config.deadline_margin_ms / 1000
        self.default_delay = delay

    def delay(self, request: pb.CheckRequest) -> Delay:
        """How long a Check may wait for a worker thread: the default (``max_queue_delay_ms``), or
        its ruleset's budget p95 when that is longer."""
        try:
            graph = self.guard.registry.get(request.ruleset, request.version).graph
        except UnknownRuleset:  # answered NOT_FOUND once in
            return self.default_delay
        budget_s = graph.budget_p95_us / 1e6
        if budget_s <= self.default_delay.seconds:
            return self.default_delay
        return Delay(budget_s, f"the budget p95 of ruleset {graph.name} ({budget_s * 1000:g} ms)")

    def Check(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> pb.CheckResponse:  # noqa: N802
        started = time.perf_counter()
        try:
            with observer().traced(context.invocation_metadata()):
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
        checked = self.guard.check(
            request.ruleset,
            domain,
            version=request.version,
            timeout_s=self._timeout_s(context),
            decided=done_working,
        )
        return response_from_decision(
            checked.decision,
            default=checked.default,
            decision_id=checked.decision_id,
            request_id=request.request_id,
            now_s=time.time(),
            server_us=(time.perf_counter() - started) * 1e6,
            approval=checked.approval,
        )

    def _timeout_s(self, context: grpc.ServicerContext) -> float | None:
        """The evaluation's share of the call's deadline: what remains, less time to send the reply;
        None (Guard's default) when the call has no deadline."""
        remaining = time_left_s(context)
        return None if remaining is None else max(remaining - self.margin_s, 0.0)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    log.debug("check refused: %s: %s", code.name, details)
    context.abort(code, details)
