"""Approval <-> protobuf: the messages of the Approvals service, for the servicer and the client."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from engine.approvals import Approval, Query, State
from engine.approvals.model import now_us
from engine.protocol.wire import apb

STATES: dict[State, apb.ApprovalState.ValueType] = {
    State.PENDING: apb.APPROVAL_STATE_PENDING,
    State.APPROVED: apb.APPROVAL_STATE_APPROVED,
    State.DENIED: apb.APPROVAL_STATE_DENIED,
    State.EXPIRED: apb.APPROVAL_STATE_EXPIRED,
    State.CANCELLED: apb.APPROVAL_STATE_CANCELLED,
}
FROM_STATES = {value: state for state, value in STATES.items()}
MAX_LIST = 1000


def approval_to_proto(approval: Approval) -> apb.Approval:
    return apb.Approval(
        id=approval.id,
        queue=approval.queue,
        state=STATES[approval.state],
        ruleset=approval.ruleset,
        version=approval.version,
        rule=approval.rule,
        reason=approval.reason,
        binding=approval.binding,
        stage=approval.stage,
        principal_id=approval.principal_id,
        tenant=approval.tenant,
        tool=approval.tool,
        created=_timestamp(approval.created_us),
        deadline=_timestamp(approval.deadline_us),
        on_expiry=approval.on_expiry,
        single_use=approval.single_use,
        used=approval.used,
        resolver=approval.resolver,
        comment=approval.comment,
        resolved=_timestamp(approval.resolved_us) if approval.resolved_us else None,
    )


def approval_from_proto(msg: apb.Approval) -> Approval:
    return Approval(
        id=msg.id,
        queue=msg.queue,
        state=FROM_STATES[msg.state],
        ruleset=msg.ruleset,
        version=msg.version,
        rule=msg.rule,
        reason=msg.reason,
        binding=msg.binding,
        stage=msg.stage,
        principal_id=msg.principal_id,
        tenant=msg.tenant,
        tool=msg.tool,
        created_us=msg.created.ToMicroseconds(),
        deadline_us=msg.deadline.ToMicroseconds(),
        on_expiry=msg.on_expiry,
        single_use=msg.single_use,
        used=msg.used,
        resolver=msg.resolver,
        comment=msg.comment,
        resolved_us=msg.resolved.ToMicroseconds() if msg.HasField("resolved") else 0,
    )


def query_from_proto(msg: apb.ListApprovalsRequest) -> Query:
    """The store query for a List request; its age is counted from now."""
    before = now_us() - int(msg.min_age_s * 1_000_000) if msg.min_age_s > 0 else 0
    limit = msg.limit if 0 < msg.limit <= MAX_LIST else MAX_LIST
    return Query(queue=msg.queue, state=FROM_STATES.get(msg.state), created_before_us=before, limit=limit)


def _timestamp(micros: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(micros)
    return stamp
