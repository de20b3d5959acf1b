"""The Check side of approvals in process: a real ruleset's ESCALATE opens approvals, a resumed Check
settles by their state (approved, denied, expired, used up, replayed elsewhere, unknown)."""

from __future__ import annotations

from pathlib import Path

import pytest
from approvals_helpers import (
    AGENT,
    LISTING,
    LOGS,
    MIGRATE,
    NAME,
    SHELL,
    approval_events,
    audit_records,
    call,
    decide,
    due_approval,
    resumed,
)

from dsl.types import Outcome, Stage
from engine.approvals import Approval, ApprovalGate, Approvals, Gated, Query, State
from engine.runtime.request import Principal, Request, ToolCall


def _check(gate: ApprovalGate, request: Request, decision_id: str = "d") -> Gated:
    return gate.apply(decide(request), request, decision_id)


def _escalated(gate: ApprovalGate, request: Request, decision_id: str = "d-open") -> Approval:
    gated = _check(gate, request, decision_id)
    assert gated.decision.outcome is Outcome.ESCALATE
    assert gated.approval is not None
    return gated.approval


def _pending(approvals: Approvals) -> list[Approval]:
    return approvals.query(Query(state=State.PENDING))


def test_a_decision_without_escalation_or_approval_id_passes_through(
    gate: ApprovalGate, approvals: Approvals
) -> None:
    for request in (call(ToolCall(name="ls")), call(ToolCall(name="cat", arguments={"path": "/etc/passwd"}))):
        decision = decide(request)
        gated = gate.apply(decision, request, "d")
        assert gated.decision is decision and gated.approval is None
    assert _pending(approvals) == []


def test_an_escalation_opens_an_approval_from_the_rule(gate: ApprovalGate, audit_dir: Path) -> None:
    gated = _check(gate, call(SHELL), "d-1")
    approval = gated.approval
    assert gated.decision.outcome is Outcome.ESCALATE and approval is not None
    assert approval.state is State.PENDING
    assert (approval.queue, approval.rule, approval.reason) == (
        "sre-oncall",
        "shell",
        "shell commands need an approver",
    )
    assert (approval.ruleset, approval.version, approval.stage) == (NAME, "1.0.0", "tool_call")
    assert (approval.principal_id, approval.tenant, approval.tool) == ("agent-7", "acme", "shell.exec")
    assert approval.deadline_us - approval.created_us == 30 * 60 * 1_000_000
    assert (approval.on_expiry, approval.single_use, approval.used) == ("deny", True, False)
    opened = [r for r in audit_records(audit_dir) if r.get("kind") == "approval"]
    assert [(r["event"], r["decision"], r["approval"]["id"]) for r in opened] == [
        ("opened", "d-1", approval.id)
    ]


def test_the_escalate_options_reach_the_approval(gate: ApprovalGate) -> None:
    reads = _escalated(gate, call(LOGS))
    assert (reads.on_expiry, reads.single_use, reads.queue) == ("allow", True, "privacy")
    assert reads.deadline_us - reads.created_us == 15 * 60 * 1_000_000
    listing = _escalated(gate, call(LISTING))
    assert (listing.on_expiry, listing.single_use) == ("deny", False)


def test_two_escalating_rules_open_one_approval_each_and_cite_the_first(
    gate: ApprovalGate, approvals: Approvals
) -> None:
    cited = _escalated(gate, call(MIGRATE))
    assert (cited.rule, cited.queue) == ("migrations_need_a_dba", "dba")
    opened = {a.rule: a for a in _pending(approvals)}
    assert set(opened) == {"migrations_need_a_dba", "migrations_need_sre"}
    assert opened["migrations_need_a_dba"].id == cited.id
    sre = opened["migrations_need_sre"]
    assert sre.queue == "sre-oncall" and sre.binding == cited.binding
    assert sre.deadline_us - sre.created_us == 60 * 60 * 1_000_000


def test_a_repeated_request_rejoins_the_pending_approval(
    gate: ApprovalGate, approvals: Approvals, audit_dir: Path
) -> None:
    first = _escalated(gate, call(SHELL), "d-1")
    again = _escalated(gate, call(SHELL), "d-2")
    assert again == first
    assert [a.id for a in _pending(approvals)] == [first.id]
    assert approval_events(audit_dir) == ["opened"]


def test_a_different_request_opens_its_own_approval(gate: ApprovalGate, approvals: Approvals) -> None:
    first = _escalated(gate, call(SHELL))
    other_args = _escalated(gate, call(ToolCall(name="shell.exec", arguments={"cmd": "rm -rf /"})))
    other_agent = _escalated(gate, call(SHELL, principal=Principal(id="agent-8", tenant="acme")))
    assert len({first.id, other_args.id, other_agent.id}) == 3
    assert len({first.binding, other_args.binding, other_agent.binding}) == 3
    assert len(_pending(approvals)) == 3


def test_an_approved_approval_allows_the_request_once(
    gate: ApprovalGate, approvals: Approvals, audit_dir: Path
) -> None:
    request = call(SHELL)
    approval = _escalated(gate, request)
    assert _check(gate, resumed(request, approval.id)).decision.outcome is Outcome.ESCALATE  # still pending
    approvals.resolve(approval.id, True, "alice", "looks fine")

    allowed = _check(gate, resumed(request, approval.id), "d-use")
    assert allowed.decision.outcome is Outcome.ALLOW and allowed.approval is None
    assert allowed.decision.reasons == (f"approved in approval {approval.id} by alice: looks fine",)
    assert approvals.get(approval.id).used

    again = _check(gate, resumed(request, approval.id), "d-again")
    assert again.decision.outcome is Outcome.BLOCK and again.approval is None
    assert again.decision.reasons == (f"approval {approval.id} was already used",)

    used = [r for r in audit_records(audit_dir) if r.get("event") == "used"]
    assert [(r["actor"], r["decision"], r["approval"]["used"]) for r in used] == [("agent-7", "d-use", True)]
    assert approval_events(audit_dir, approval.id) == ["opened", "approved", "used"]


def test_the_request_id_does_not_change_what_an_approval_is_for(
    gate: ApprovalGate, approvals: Approvals
) -> None:
    approval = _escalated(gate, Request(stage=Stage.TOOL_CALL, tool=SHELL, principal=AGENT, request_id="r1"))
    approvals.resolve(approval.id, True, "alice", "")
    retry = Request(
        stage=Stage.TOOL_CALL, tool=SHELL, principal=AGENT, request_id="r2", approval_id=approval.id
    )
    assert _check(gate, retry).decision.outcome is Outcome.ALLOW


def test_a_reusable_approval_allows_the_request_again(gate: ApprovalGate, approvals: Approvals) -> None:
    request = call(LISTING)
    approval = _escalated(gate, request)
    approvals.resolve(approval.id, True, "alice", "")
    for decision_id in ("d-1", "d-2", "d-3"):
        assert _check(gate, resumed(request, approval.id), decision_id).decision.outcome is Outcome.ALLOW
    assert not approvals.get(approval.id).used


def test_a_denied_approval_blocks(gate: ApprovalGate, approvals: Approvals) -> None:
    request = call(SHELL)
    approval = _escalated(gate, request)
    approvals.resolve(approval.id, False, "bob", "not today")
    blocked = _check(gate, resumed(request, approval.id))
    assert blocked.decision.outcome is Outcome.BLOCK and blocked.approval is None
    assert blocked.decision.reasons == (f"denied in approval {approval.id} by bob: not today",)
    assert not approvals.get(approval.id).used


def test_a_cancelled_approval_blocks(gate: ApprovalGate, approvals: Approvals) -> None:
    request = call(SHELL)
    approval = _escalated(gate, request)
    approvals.cancel(approval.id, "carol", "")
    blocked = _check(gate, resumed(request, approval.id))
    assert blocked.decision.outcome is Outcome.BLOCK
    assert blocked.decision.reasons == (f"cancelled in approval {approval.id} by carol",)


@pytest.mark.parametrize(
    "case",
    [
        (LOGS, "reads_go_ahead", "allow", Outcome.ALLOW),
        (SHELL, "shell", "deny", Outcome.BLOCK),
    ],
)
def test_an_expired_approval_settles_by_its_on_expiry(
    gate: ApprovalGate, approvals: Approvals, audit_dir: Path, case: tuple[ToolCall, str, str, Outcome]
) -> None:
    tool, rule, on_expiry, outcome = case
    request = call(tool)
    due = due_approval(approvals, request, rule, on_expiry=on_expiry)
    settled = _check(gate, resumed(request, due.id))
    assert settled.decision.outcome is outcome and settled.approval is None
    assert settled.decision.reasons == (f"approval {due.id} expired unanswered",)
    expired = approvals.get(due.id)
    assert expired.state is State.EXPIRED and not expired.used
    assert (expired.resolver, expired.comment) == ("palisade", "deadline passed")
    assert approval_events(audit_dir, due.id) == ["opened", "expired"]


def test_after_expiry_the_same_request_opens_a_new_approval(gate: ApprovalGate, approvals: Approvals) -> None:
    request = call(SHELL)
    due = due_approval(approvals, request, "shell")
    fresh = _escalated(gate, request)
    assert fresh.id != due.id and fresh.state is State.PENDING
    assert approvals.get(due.id).state is State.EXPIRED


@pytest.mark.parametrize(
    "other",
    [
        call(ToolCall(name="shell.exec", arguments={"cmd": "rm -rf /"})),  # other arguments
        call(SHELL, principal=Principal(id="agent-8", tenant="acme")),  # another agent
        call(SHELL, principal=Principal(id="agent-7", tenant="globex")),  # another tenant
        call(ToolCall(name="shell.exec", arguments={"cmd": "rm -rf build/"}, server="other")),
        call(ToolCall(name="ls")),  # a request that does not escalate at all
    ],
)
def test_an_approval_presented_with_another_request_blocks_and_is_recorded(
    gate: ApprovalGate, approvals: Approvals, audit_dir: Path, other: Request
) -> None:
    approval = _escalated(gate, call(SHELL))
    approvals.resolve(approval.id, True, "alice", "")
    replayed = _check(gate, resumed(other, approval.id), "d-replay")
    assert replayed.decision.outcome is Outcome.BLOCK and replayed.approval is None
    assert replayed.decision.reasons == (f"approval {approval.id} was issued for another request",)
    after = approvals.get(approval.id)
    assert after.state is State.APPROVED and not after.used  # still good for its own request
    replays = [r for r in audit_records(audit_dir) if r.get("event") == "replay"]
    assert [(r["actor"], r["decision"], r["approval"]["id"]) for r in replays] == [
        (other.principal.id, "d-replay", approval.id)
    ]
    assert replays[0]["comment"] == "presented with a request it is not bound to"
    assert _check(gate, resumed(call(SHELL), approval.id)).decision.outcome is Outcome.ALLOW


def test_an_unknown_approval_id_blocks(gate: ApprovalGate, approvals: Approvals, audit_dir: Path) -> None:
    for request in (
        call(SHELL, approval_id="no-such-approval"),
        call(ToolCall(name="ls"), approval_id="nope"),
    ):
        gated = _check(gate, request)
        assert gated.decision.outcome is Outcome.BLOCK and gated.approval is None
        assert gated.decision.reasons == (f"unknown approval {request.approval_id!r}",)
    assert _pending(approvals) == []
    assert approval_events(audit_dir) == []


def test_a_request_escalated_by_two_rules_needs_both_approvals(
    gate: ApprovalGate, approvals: Approvals, audit_dir: Path
) -> None:
    request = call(MIGRATE)
    dba = _escalated(gate, request)
    sre = next(a for a in _pending(approvals) if a.rule == "migrations_need_sre")

    approvals.resolve(dba.id, True, "dave", "")
    waiting = _check(gate, resumed(request, dba.id))
    assert waiting.decision.outcome is Outcome.ESCALATE
    assert waiting.approval is not None and waiting.approval.id == sre.id  # cites the one still pending
    assert not approvals.get(dba.id).used  # nothing is used up until the request goes through

    approvals.resolve(sre.id, True, "sam", "")
    allowed = _check(gate, resumed(request, sre.id), "d-both")  # either id resumes
    assert allowed.decision.outcome is Outcome.ALLOW and allowed.approval is None
    assert set(allowed.decision.reasons) == {
        f"approved in approval {dba.id} by dave",
        f"approved in approval {sre.id} by sam",
    }
    assert approvals.get(dba.id).used and approvals.get(sre.id).used
    assert _check(gate, resumed(request, dba.id)).decision.outcome is Outcome.BLOCK
    assert approval_events(audit_dir) == ["opened", "opened", "approved", "approved", "used", "used"]


def test_one_denial_of_two_blocks_and_uses_nothing(gate: ApprovalGate, approvals: Approvals) -> None:
    request = call(MIGRATE)
    dba = _escalated(gate, request)
    sre = next(a for a in _pending(approvals) if a.rule == "migrations_need_sre")
    approvals.resolve(dba.id, True, "dave", "")
    approvals.resolve(sre.id, False, "sam", "freeze")
    blocked = _check(gate, resumed(request, dba.id))
    assert blocked.decision.outcome is Outcome.BLOCK
    assert f"denied in approval {sre.id} by sam: freeze" in blocked.decision.reasons
    assert not approvals.get(dba.id).used


def test_resuming_before_the_other_rule_was_ever_asked_opens_its_approval(
    gate: ApprovalGate, approvals: Approvals
) -> None:
    request = call(MIGRATE)
    dba = due_approval(approvals, request, "migrations_need_a_dba", on_expiry="allow", queue="dba")
    waiting = _check(gate, resumed(request, dba.id))
    assert waiting.decision.outcome is Outcome.ESCALATE
    assert waiting.approval is not None and waiting.approval.rule == "migrations_need_sre"
    assert waiting.approval.state is State.PENDING and waiting.approval.binding == dba.binding


def test_an_approval_the_policy_no_longer_asks_for_settles_nothing(
    gate: ApprovalGate, approvals: Approvals
) -> None:
    request = call(MIGRATE)
    dba = _escalated(gate, request)
    approvals.resolve(dba.id, True, "dave", "")
    shell_decision = decide(call(SHELL))  # the same request now escalated by another rule only
    gated = gate.apply(shell_decision, resumed(request, dba.id), "d")
    assert gated.decision.outcome is Outcome.ESCALATE  # the binding matches, but `shell` is not approved
    assert gated.approval is not None and gated.approval.rule == "shell"
    assert not approvals.get(dba.id).used


def test_an_approved_request_that_another_rule_redacts_carries_the_redacted_text(
    gate: ApprovalGate, approvals: Approvals
) -> None:
    request = Request(stage=Stage.INPUT, text="wire it, my SSN is 123-45-6789", principal=AGENT)
    approval = _escalated(gate, request)
    approvals.resolve(approval.id, True, "fiona", "")
    settled = _check(gate, resumed(request, approval.id))
    assert settled.decision.outcome is Outcome.FALLBACK  # the redaction rule decides now
    assert settled.decision.redacted == "wire it, my SSN is <US_SSN>"
