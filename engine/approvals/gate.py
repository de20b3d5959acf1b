"""The Check side of approvals: ESCALATE opens (or rejoins) them; a resumed Check settles by their state.

Each rule that escalates a request has its own approval, routed to that rule's queue; the answer
cites the first one still pending. Resuming with an approval id settles the rules whose approvals
are answered (approved: ALLOW for that rule; denied, expired or cancelled: BLOCK); the decision is
then again the most restrictive outcome, so a request escalated by two rules needs both approvals.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dsl.ir import ActionNode
from dsl.types import Outcome
from engine.approvals.model import Approval, ApprovalNotFound, State, binding_digest, now_us
from engine.approvals.service import Approvals
from engine.runtime.decision import Decision, RuleMatch
from engine.runtime.ids import new_id
from engine.runtime.observer import Attributes, observer
from engine.runtime.request import Request, quoted

DEFAULT_RULE = "(default)"
DEFAULT_WITHIN_US = 24 * 3600 * 1_000_000  # for an escalation without `within`


@dataclass(frozen=True, slots=True)
class Gated:
    """The decision to answer and record, and the approval an ESCALATE answer cites."""

    decision: Decision
    approval: Approval | None = None


@dataclass(frozen=True, slots=True)
class _Ask:
    """One Check as the gate sees it."""

    decision: Decision
    request: Request
    decision_id: str
    binding: str


class ApprovalGate:
    """Turns an evaluated decision into the answer, given the approvals behind it."""

    def __init__(self, approvals: Approvals) -> None:
        self.approvals = approvals

    def apply(self, decision: Decision, request: Request, decision_id: str) -> Gated:
        """Resume with ``request.approval_id`` if given; open approvals for an ESCALATE decision."""
        if not request.approval_id and decision.outcome is not Outcome.ESCALATE:
            return Gated(decision)  # nothing to open or resume
        binding = binding_digest(request, decision.ruleset, self.approvals.audit.digest)
        ask = _Ask(decision, request, decision_id, binding)
        if not request.approval_id:
            return self._escalate(ask)
        noted: Attributes = {}
        with observer().span("palisade.approval.consume", noted, decision_id=decision_id):
            gated = self._presented(ask, noted)
            noted.setdefault("palisade.approval.result", gated.decision.outcome.label)
        return gated

    def _presented(self, ask: _Ask, noted: Attributes) -> Gated:
        """Resume with the approval the request presents; ``noted`` hears which it was and, where the
        decision does not say it, the result (not_found, replay, reopened)."""
        decision, request = ask.decision, ask.request
        try:
            presented = self.approvals.get(request.approval_id)
        except ApprovalNotFound:  # the id the caller sent is not traced: it may be any text
            noted["palisade.approval.result"] = "not_found"
            reason = f"unknown approval {quoted(request.approval_id)}"
            return Gated(_settle(decision, "", Outcome.BLOCK, reason))
        noted.update(presented.traced())
        if presented.binding != ask.binding:
            noted["palisade.approval.result"] = "replay"
            self.approvals.record_replay(presented, request.principal.id, ask.decision_id)
            reason = f"approval {presented.id} was issued for another request"
            return Gated(_settle(decision, presented.rule, Outcome.BLOCK, reason))
        if presented.rule not in escalations(decision):
            noted["palisade.approval.result"] = "reopened"
            return self._escalate(ask)  # the policy no longer asks for this approval
        return self._resume(ask, presented)

    def _escalate(self, ask: _Ask) -> Gated:
        """Open (or rejoin) an approval for every rule that escalates; cite the first."""
        opened = [self._open(ask, rule, action) for rule, action in escalations(ask.decision).items()]
        return Gated(ask.decision, opened[0] if opened else None)

    def _open(self, ask: _Ask, rule: str, action: ActionNode) -> Approval:
        return self.approvals.open(_candidate(ask, rule, action), ask.decision_id)

    def _resume(self, ask: _Ask, presented: Approval) -> Gated:
        settled, waiting, approved = ask.decision, [], []
        for rule, action in escalations(ask.decision).items():
            held = presented if rule == presented.rule else self._held(ask, rule, action)
            if held.pending:
                waiting.append(held)
                continue
            outcome, reason = _verdict(held)
            if outcome is Outcome.ALLOW and held.state is State.APPROVED:
                approved.append(held)
            settled = _settle(settled, rule, outcome, reason)
        if settled.outcome in (Outcome.ALLOW, Outcome.FALLBACK):
            settled = self._use(ask, settled, approved)
        return Gated(settled, waiting[0] if settled.outcome is Outcome.ESCALATE and waiting else None)

    def _held(self, ask: _Ask, rule: str, action: ActionNode) -> Approval:
        """The approval of another rule that escalates the same request: the newest, or a new one."""
        latest = self.approvals.latest(ask.binding, ask.decision.ruleset, rule)
        return latest if latest is not None else self._open(ask, rule, action)

    def _use(self, ask: _Ask, settled: Decision, approved: list[Approval]) -> Decision:
        """Use up the single-use approvals that let the request through (compare-and-set)."""
        actor = ask.request.principal.id
        for approval in approved:
            if approval.single_use and self.approvals.use(approval, actor, ask.decision_id) is None:
                return _settle(
                    settled, approval.rule, Outcome.BLOCK, f"approval {approval.id} was already used"
                )
        return settled


def escalations(decision: Decision) -> dict[str, ActionNode]:
    """The rules whose escalation decides, in order, each with its action ("(default)" for the default)."""
    if decision.outcome is not Outcome.ESCALATE:
        return {}
    if decision.default_applied:
        return {DEFAULT_RULE: decision.default_action} if decision.default_action is not None else {}
    found: dict[str, ActionNode] = {}
    for match in decision.deciding:
        found.setdefault(match.rule, match.action)
    return found


def _verdict(approval: Approval) -> tuple[Outcome, str]:
    """What an answered approval means for its rule (before single use is checked)."""
    by = f"{approval.resolver}: {approval.comment}" if approval.comment else approval.resolver
    if approval.state is State.APPROVED:
        if approval.single_use and approval.used:
            return Outcome.BLOCK, f"approval {approval.id} was already used"
        if not approval.single_use and now_us() >= approval.deadline_us:
            return Outcome.BLOCK, f"approval {approval.id} is past its deadline"
        return Outcome.ALLOW, f"approved in approval {approval.id} by {by}"
    if approval.state is State.EXPIRED:
        outcome = Outcome.ALLOW if approval.on_expiry == "allow" else Outcome.BLOCK
        return outcome, f"approval {approval.id} expired unanswered"
    return Outcome.BLOCK, f"{approval.state.value} in approval {approval.id} by {by}"


def _candidate(ask: _Ask, rule: str, action: ActionNode) -> Approval:
    created, request = now_us(), ask.request
    return Approval(
        id=new_id(),
        queue=action.queue,
        state=State.PENDING,
        ruleset=ask.decision.ruleset,
        version=ask.decision.version,
        rule=rule,
        reason=action.reason,
        binding=ask.binding,
        stage=request.stage.value,
        principal_id=request.principal.id,
        tenant=request.principal.tenant,
        tool=request.tool.name if request.tool is not None else "",
        created_us=created,
        deadline_us=created + (action.within_us or DEFAULT_WITHIN_US),
        on_expiry=action.on_expiry or "deny",
        single_use=not action.reusable,
    )


def _settle(decision: Decision, rule: str, outcome: Outcome, reason: str) -> Decision:
    """``decision`` with the escalations of ``rule`` (every match when ``rule`` is empty) answered
    as ``outcome`` for ``reason``; the outcome is again the most restrictive match's."""
    escalated = [m for m in decision.matches if m.rule == rule and m.outcome is Outcome.ESCALATE]
    kept = tuple(m for m in decision.matches if rule and m not in escalated)
    action = ActionNode(outcome, reason=reason)
    answered = RuleMatch(rule or "(approval)", escalated[0].arm if escalated else 0, action, reason)
    settled = max(m.outcome for m in (*kept, answered))
    return dataclasses.replace(
        decision,
        outcome=settled,
        matches=(*kept, answered),
        default_applied=False,
        redacted=_redacted(decision) if settled is Outcome.FALLBACK else None,
    )


def _redacted(decision: Decision) -> str | None:
    """The text of a FALLBACK that approvals settled: the redactions of its rules, which the
    evaluator computed beside the ESCALATE for when its approvals are granted."""
    return decision.redacted if decision.redacted is not None else decision.redacted_if_approved
