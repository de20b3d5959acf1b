"""The Approvals servicer: thin; the lifecycle lives in engine.approvals, this adapts gRPC to it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import grpc

from engine.approvals import AlreadyResolved, ApprovalNotFound, Approvals, ApprovalUnavailable, watch
from engine.approvals.approvers import Approvers
from engine.audit import AuditUnavailable
from engine.protocol.approvals_codec import approval_to_proto, query_from_proto
from engine.protocol.wire import apb, apb_grpc
from engine.runtime.observer import observer
from engine.server.admission import SHUTTING_DOWN

log = logging.getLogger("palisade.server")
T = TypeVar("T")
_BEARER = "bearer "


class ApprovalsServicer(apb_grpc.ApprovalsServicer):
    """Get, List, Resolve, Cancel and Watch over one data directory's approvals.

    With ``approvers`` (the approvers file), Resolve needs an approver's token and records that
    approver's name; the other calls cannot produce an ALLOW and stay open to any caller. Once
    ``stopping`` is set (shutdown), Watch streams end with UNAVAILABLE saying so.
    """

    def __init__(
        self,
        approvals: Approvals,
        approvers: Approvers | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.approvals = approvals
        self.approvers = approvers
        self.stopping = stopping or threading.Event()

    def Get(self, request: apb.GetApprovalRequest, context: grpc.ServicerContext) -> apb.Approval:  # noqa: N802
        return _call(context, lambda: approval_to_proto(self.approvals.get(request.approval_id)))

    def List(  # noqa: N802
        self, request: apb.ListApprovalsRequest, context: grpc.ServicerContext
    ) -> apb.ListApprovalsResponse:
        found = _call(context, lambda: self.approvals.query(query_from_proto(request)))
        return apb.ListApprovalsResponse(approvals=[approval_to_proto(a) for a in found])

    def Resolve(  # noqa: N802
        self, request: apb.ResolveApprovalRequest, context: grpc.ServicerContext
    ) -> apb.Approval:
        if request.resolution == apb.RESOLUTION_UNSPECIFIED:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "resolution: approve or deny")
        approver = self._approver(request.approver, context)
        approve = request.resolution == apb.RESOLUTION_APPROVE
        args = (request.approval_id, approve, approver, request.comment)
        return _call(context, lambda: approval_to_proto(self.approvals.resolve(*args)))

    def _approver(self, claimed: str, context: grpc.ServicerContext) -> str:
        """Who answers: the token's approver when tokens are configured, else the name given."""
        if self.approvers is None:
            if not claimed:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "approver: required")
            return claimed
        token = _bearer(context)
        name = self.approvers.identify(token) if token else None
        if name is None:
            what = "an unknown approver token" if token else "no approver token"
            message = f"{what}: answering approvals needs metadata 'authorization: Bearer TOKEN'"
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, message)
        if claimed and claimed != name:
            message = f"approver: the token is {name}'s, not {claimed}'s"
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, message)
        return name

    def Cancel(self, request: apb.CancelApprovalRequest, context: grpc.ServicerContext) -> apb.Approval:  # noqa: N802
        if not request.actor:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "actor: required")
        args = (request.approval_id, request.actor, request.comment)
        return _call(context, lambda: approval_to_proto(self.approvals.cancel(*args)))

    def Watch(  # noqa: N802
        self, request: apb.WatchApprovalsRequest, context: grpc.ServicerContext
    ) -> Iterator[apb.ApprovalEvent]:
        def active() -> bool:
            return context.is_active() and not self.stopping.is_set()

        events = watch(self.approvals, approval_id=request.approval_id, queue=request.queue, active=active)
        while True:
            step = _call(context, lambda: next(events, None))
            if step is None:
                if self.stopping.is_set():
                    _abort(context, grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
                return
            event, approval = step
            yield apb.ApprovalEvent(event=event, approval=approval_to_proto(approval))


def _bearer(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == "authorization" and isinstance(value, str) and value.lower().startswith(_BEARER):
            return value[len(_BEARER) :].strip()
    return ""


def _call(context: grpc.ServicerContext, work: Callable[[], T]) -> T:
    """Run ``work`` in the caller's trace (its W3C ``traceparent``), answering the engine's errors
    with their status codes."""
    try:
        with observer().traced(context.invocation_metadata()):
            return work()
    except ApprovalNotFound as exc:
        _abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
    except AlreadyResolved as exc:
        _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    except (ApprovalUnavailable, AuditUnavailable) as exc:
        log.error("approvals unavailable: %s", exc)
        _abort(context, grpc.StatusCode.UNAVAILABLE, "approvals cannot be recorded now; try again")


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
