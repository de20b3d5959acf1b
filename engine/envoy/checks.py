"""The Checks of one HTTP exchange, each through Guard.check, and what their decisions tell the client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dsl.types import Outcome, Stage
from engine.approvals import ApprovalError
from engine.config import Limits
from engine.envoy.openai import Path, Slot, ToolUse, error_body, split_redacted
from engine.guard import Checked, Guard
from engine.protocol.request_codec import bounded
from engine.runtime.decision import FALLBACK_PRIORITY
from engine.runtime.observer import observer
from engine.runtime.request import Message, Principal, Request, ToolCall


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, from the request's headers (never its body), and the ruleset that applies."""

    ruleset: str
    principal: Principal = field(default_factory=Principal)
    metadata: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""
    approval_id: str = ""
    trace: tuple[tuple[str, str], ...] = ()  # traceparent and tracestate: the Checks join that trace


@dataclass(frozen=True, slots=True)
class Asked:
    """One Check made: the texts of the body it carried (none for a tool call) and its answer."""

    slots: tuple[Slot, ...]
    checked: Checked


class Checks:
    """Makes an exchange's Checks through ``guard``, under the service's limits (the gRPC codec's).

    A resumed exchange carries one approval id; it goes with the first Check of the approval's
    stage (and tool), so that the other Checks of the exchange are not refused as replays. An id
    the approvals do not know goes with the first Check, which Guard then refuses."""

    def __init__(self, guard: Guard, limits: Limits, caller: Caller) -> None:
        self.guard = guard
        self.limits = limits
        self.caller = caller
        self._approval_for = _approval_target(guard, caller.approval_id)

    def check(self, stage: Stage, slots: Sequence[Slot] = (), tool: ToolUse | None = None) -> Asked:
        """Check ``slots`` (as messages at `input`, else as the text) and ``tool`` at ``stage``.
        Raises InvalidRequest (over a limit) and runtime.registry.UnknownRuleset."""
        caller = self.caller
        messages = tuple(Message(s.role, s.text) for s in slots) if stage is Stage.INPUT else ()
        request = Request(
            stage=stage,
            messages=messages,
            text="" if messages else "".join(s.text for s in slots),
            tool=ToolCall(tool.name, tool.arguments) if tool is not None else None,
            principal=caller.principal,
            metadata=caller.metadata,
            request_id=caller.request_id,
            approval_id=self._approval(stage, tool),
        )
        with observer().traced(caller.trace):
            checked = self.guard.check(caller.ruleset, bounded(caller.ruleset, request, self.limits))
        return Asked(tuple(slots), checked)

    def _approval(self, stage: Stage, tool: ToolUse | None) -> str:
        target = self._approval_for
        if target is None or target[0] not in ("", stage.value):
            return ""
        if target[1] and (tool is None or tool.name != target[1]):
            return ""
        self._approval_for = None
        return self.caller.approval_id


def _approval_target(guard: Guard, approval_id: str) -> tuple[str, str] | None:
    """The stage and tool of the approval an exchange resumes with ("" for each: the first Check)."""
    if not approval_id:
        return None
    try:
        approval = guard.approvals.get(approval_id)
    except ApprovalError:  # unknown, or the store cannot say: Guard answers that on the first Check
        return ("", "")
    return (approval.stage, approval.tool)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the Checks of one body (or part of a stream) tell Palisade to do with it."""

    outcome: Outcome = Outcome.ALLOW
    deciding: Checked | None = None  # the Check whose answer decides (the first most restrictive)
    reply: str | None = None  # FALLBACK reply: the canned answer
    model: str = ""  # FALLBACK model: the model to use instead
    texts: dict[Path, str] = field(default_factory=dict)  # FALLBACK redact: each text rewritten


def verdict(asked: Sequence[Asked]) -> Verdict:
    """The most restrictive outcome of ``asked``. For FALLBACK, the most conservative action decides
    (as among tied rules): a canned reply, else a fallback model, else the redactions; every
    redaction is applied with a fallback model too."""
    if not asked:
        return Verdict()
    outcome = max(a.checked.decision.outcome for a in asked)
    if outcome is not Outcome.FALLBACK:
        return Verdict(outcome, next(a.checked for a in asked if a.checked.decision.outcome is outcome))
    fallbacks = sorted(
        (a for a in asked if a.checked.decision.outcome is Outcome.FALLBACK),
        key=lambda a: FALLBACK_PRIORITY.get(_fallback(a.checked)[0], len(FALLBACK_PRIORITY)),
    )
    deciding = fallbacks[0].checked
    kind, value = _fallback(deciding)
    if kind == "reply":
        return Verdict(outcome, deciding, reply=value)
    texts = {path: text for a in fallbacks for path, text in _redactions(a).items()}
    return Verdict(outcome, deciding, model=value if kind == "model" else "", texts=texts)


def _fallback(checked: Checked) -> tuple[str, str]:
    action = checked.default if checked.decision.default_applied else checked.decision.action
    return (action.fallback, action.fallback_value) if action is not None else ("", "")


def _redactions(asked: Asked) -> dict[Path, str]:
    redacted = asked.checked.decision.redacted
    if redacted is None or not asked.slots:
        return {}
    if len(asked.slots) == 1:
        return {asked.slots[0].path: redacted}
    parts = split_redacted([s.text for s in asked.slots], redacted)
    return {slot.path: part for slot, part in zip(asked.slots, parts, strict=True)}


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer Palisade gives in place of the upstream's: an HTTP status, a body, headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def refusal(checked: Checked, approval_header: str) -> Answer:
    """The OpenAI-style error for a BLOCK, an ESCALATE (with the approval id to resume with) or a
    fallback model that a completion cannot take (the client asks again with that model)."""
    decision = checked.decision
    rule, reason = checked.cited
    named = {"rule": rule, "ruleset": decision.ruleset, "decision_id": checked.decision_id}
    headers = {"x-palisade-decision-id": checked.decision_id}
    if decision.outcome is Outcome.ESCALATE:
        approval = checked.approval
        approval_id = approval.id if approval is not None else ""
        message = (
            f"Palisade needs a human approval ({reason}; rule {rule}); once it is approved, send the"
            f" same request again with the header {approval_header}: {approval_id}"
        )
        headers[approval_header] = approval_id
        body = error_body(message, "policy_violation", "approval_required", approval_id=approval_id, **named)
        return Answer(403, body, headers)
    if decision.outcome is Outcome.FALLBACK:
        model = _fallback(checked)[1]
        message = f"Palisade asks for another model ({reason}; rule {rule}): ask again with model {model}"
        return Answer(
            409, error_body(message, "policy_violation", "model_fallback", model=model, **named), headers
        )
    message = (
        f"Palisade blocked this: {reason} (rule {rule})" if reason else f"Palisade blocked this (rule {rule})"
    )
    return Answer(403, error_body(message, "policy_violation", "blocked", **named), headers)
