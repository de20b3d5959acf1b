"""Decision -> CheckResponse: outcome, matches, findings (never the text), fallback, escalation."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from detectors.base import ModelVersion
from dsl.ir import ActionNode
from dsl.types import Outcome
from engine.approvals import Approval
from engine.protocol.wire import pb
from engine.runtime.decision import Decision

OUTCOMES: dict[Outcome, pb.Outcome.ValueType] = {
    Outcome.ALLOW: pb.OUTCOME_ALLOW,
    Outcome.BLOCK: pb.OUTCOME_BLOCK,
    Outcome.FALLBACK: pb.OUTCOME_FALLBACK,
    Outcome.ESCALATE: pb.OUTCOME_ESCALATE,
}
FALLBACK_KINDS: dict[str, pb.FallbackKind.ValueType] = {
    "reply": pb.FALLBACK_KIND_REPLY,
    "model": pb.FALLBACK_KIND_MODEL,
    "redact": pb.FALLBACK_KIND_REDACT,
}


def response_from_decision(
    decision: Decision,
    *,
    default: ActionNode,
    decision_id: str,
    request_id: str,
    now_s: float,
    server_us: float,
    approval: Approval | None = None,
) -> pb.CheckResponse:
    """The response for ``decision``, made at Unix time ``now_s``; ``default`` is the ruleset's default;
    ``approval`` is the one an ESCALATE decision cites."""
    outcome = decision.outcome
    action = default if decision.default_applied else decision.action
    return pb.CheckResponse(
        outcome=OUTCOMES[outcome],
        decision_id=decision_id,
        ruleset=decision.ruleset,
        version=decision.version,
        content_hash=decision.content_hash,
        matches=[
            pb.RuleMatch(
                rule=m.rule,
                outcome=OUTCOMES[m.outcome],
                reason=m.reason,
                arm=m.arm,
                from_error=m.from_error,
                deciding=m.outcome == outcome,
            )
            for m in decision.matches
        ],
        reasons=[default.reason] if decision.default_applied and default.reason else list(decision.reasons),
        default_applied=decision.default_applied,
        findings=[
            pb.Finding(
                detector=r.node,
                kind=r.kind,
                type=f.type,
                score=f.score,
                start=f.start,
                end=f.end,
                models=_models(r.models),
            )
            for r in decision.detectors
            for f in r.findings
        ],
        redacted=decision.redacted,
        fallback=_fallback(action) if outcome is Outcome.FALLBACK and action else None,
        escalation=_escalation(action, approval, now_s) if outcome is Outcome.ESCALATE and action else None,
        errors=[
            pb.EvaluationError(source=e.source, code=e.code, message=e.message, rule=e.rule)
            for e in decision.errors
        ],
        timings=pb.Timings(
            evaluation_us=decision.duration_us,
            server_us=server_us,
            detector_us=dict(decision.timings_us),
            detector_cache_hits=decision.cache_hits,
            detector_cache_misses=decision.cache_misses,
        ),
        request_id=request_id,
    )


def _models(models: tuple[ModelVersion, ...]) -> list[pb.ModelVersion]:
    return [pb.ModelVersion(name=m.name, version=m.version) for m in models]


def _fallback(action: ActionNode) -> pb.Fallback:
    kind = action.fallback
    return pb.Fallback(
        kind=FALLBACK_KINDS.get(kind, pb.FALLBACK_KIND_UNSPECIFIED),
        reply=action.fallback_value if kind == "reply" else "",
        model=action.fallback_value if kind == "model" else "",
    )


def _escalation(action: ActionNode, approval: Approval | None, now_s: float) -> pb.Escalation:
    deadline = timestamp_pb2.Timestamp()
    if approval is not None:
        deadline.FromMicroseconds(approval.deadline_us)
        return pb.Escalation(queue=approval.queue, approval_id=approval.id, deadline=deadline)
    if not action.within_us:
        return pb.Escalation(queue=action.queue)
    deadline.FromMicroseconds(int(now_s * 1_000_000) + action.within_us)
    return pb.Escalation(queue=action.queue, deadline=deadline)
