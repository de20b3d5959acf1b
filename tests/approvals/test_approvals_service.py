"""The approvals lifecycle (engine.approvals.service) over a real database and audit log: open, read,
answer, cancel, use, expire lazily, prune; every transition in the audit chain as it happens."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from approvals_helpers import MINUTE_US, SHELL, approval_events, audit_records, call, due_approval, pending
from audit_helpers import verify

from dsl.types import Stage
from engine.approvals import (
    AlreadyResolved,
    Approval,
    ApprovalNotFound,
    Approvals,
    ApprovalStore,
    Query,
    State,
)
from engine.approvals.model import now_us
from engine.audit import AuditLog
from engine.runtime.ids import new_id
from engine.runtime.request import Request, ToolCall


def _candidate(
    approvals: Approvals,
    *,
    text: str = "",
    queue: str = "sre-oncall",
    rule: str = "shell",
    deadline_in_us: int = 30 * MINUTE_US,
) -> Approval:
    request = Request(stage=Stage.TOOL_CALL, tool=SHELL, text=text)
    return pending(request, approvals.audit.digest, queue=queue, rule=rule, deadline_in_us=deadline_in_us)


def _approval_records(audit_dir: Path) -> list[dict[str, Any]]:
    return [r for r in audit_records(audit_dir) if r.get("kind") == "approval"]


def test_open_stores_a_pending_approval_and_records_it(approvals: Approvals, audit_dir: Path) -> None:
    candidate = _candidate(approvals)
    opened = approvals.open(candidate, "d-1")
    assert opened == candidate
    assert approvals.get(opened.id) == candidate
    [record] = _approval_records(audit_dir)
    assert (record["event"], record["outcome"], record["actor"], record["decision"]) == (
        "opened",
        "approval:opened",
        "palisade",
        "d-1",
    )
    assert record["ruleset"] == {"name": "r", "version": "1"}
    assert record["principal"] == {"id": "agent-7", "tenant": "acme"}
    data = record["approval"]
    assert isinstance(data, dict)
    assert (data["id"], data["state"], data["binding"], data["queue"]) == (
        opened.id,
        "pending",
        opened.binding,
        "sre-oncall",
    )
    assert str(data["created"]).endswith("Z") and str(data["deadline"]).endswith("Z")
    assert data["resolved"] == ""
    assert "reason" not in data


@pytest.mark.parametrize(("approve", "state"), [(True, State.APPROVED), (False, State.DENIED)])
def test_an_answer_is_stored_and_recorded_as_the_approver(
    approvals: Approvals, audit_dir: Path, approve: bool, state: State
) -> None:
    opened = approvals.open(_candidate(approvals), "d-1")
    answered = approvals.resolve(opened.id, approve, "alice", "checked the diff")
    assert answered.state is state
    assert (answered.resolver, answered.comment) == ("alice", "checked the diff")
    assert answered.resolved_us >= opened.created_us
    assert approvals.get(opened.id) == answered
    records = _approval_records(audit_dir)
    assert [(r["event"], r["actor"], r["comment"]) for r in records] == [
        ("opened", "palisade", ""),
        (state.value, "alice", "checked the diff"),
    ]
    data = records[1]["approval"]
    assert isinstance(data, dict)
    assert (data["state"], data["resolver"]) == (state.value, "alice")
    assert str(data["resolved"]).endswith("Z")


def test_cancel_is_stored_and_recorded_as_who_cancelled(approvals: Approvals, audit_dir: Path) -> None:
    opened = approvals.open(_candidate(approvals), "d-1")
    cancelled = approvals.cancel(opened.id, "ops-bot", "request withdrawn")
    assert cancelled.state is State.CANCELLED
    assert (cancelled.resolver, cancelled.comment) == ("ops-bot", "request withdrawn")
    assert [(r["event"], r["actor"]) for r in _approval_records(audit_dir)] == [
        ("opened", "palisade"),
        ("cancelled", "ops-bot"),
    ]


@pytest.mark.parametrize(
    ("first", "state"),
    [("approve", State.APPROVED), ("deny", State.DENIED), ("cancel", State.CANCELLED)],
)
def test_only_the_first_answer_counts(
    approvals: Approvals, audit_dir: Path, first: str, state: State
) -> None:
    opened = approvals.open(_candidate(approvals), "d-1")
    answers: dict[str, Callable[[], Approval]] = {
        "approve": lambda: approvals.resolve(opened.id, True, "alice", "yes"),
        "deny": lambda: approvals.resolve(opened.id, False, "bob", "no"),
        "cancel": lambda: approvals.cancel(opened.id, "carol", "gone"),
    }
    winner = answers.pop(first)()
    for late in answers.values():
        with pytest.raises(AlreadyResolved, match=f"already resolved: {state.value}") as refused:
            late()
        assert refused.value.approval == winner
    assert approvals.get(opened.id) == winner
    assert approval_events(audit_dir) == ["opened", state.value]  # the refused answers left no record


def test_an_unknown_id_is_not_found(approvals: Approvals) -> None:
    with pytest.raises(ApprovalNotFound, match="no-such"):
        approvals.get("no-such")
    with pytest.raises(ApprovalNotFound):
        approvals.resolve("no-such", True, "alice", "")
    with pytest.raises(ApprovalNotFound):
        approvals.cancel("no-such", "alice", "")


def test_a_long_unknown_id_is_quoted_cut_short(approvals: Approvals) -> None:
    with pytest.raises(ApprovalNotFound) as refused:
        approvals.get("y" * 20_000)
    assert str(refused.value).endswith("'... (20000 characters)") and len(str(refused.value)) < 200


def test_expiry_is_applied_lazily_when_approvals_are_read(
    approvals: Approvals, store: ApprovalStore, audit_dir: Path
) -> None:
    due = due_approval(approvals, call(SHELL), "shell")
    assert store.get(due.id).state is State.PENDING  # nothing has read it through the service yet
    assert approval_events(audit_dir) == ["opened"]

    expired = approvals.get(due.id)
    assert expired.state is State.EXPIRED
    assert (expired.resolver, expired.comment) == ("palisade", "deadline passed")
    assert expired.resolved_us > 0
    assert store.get(due.id) == expired  # stored once read
    assert approvals.get(due.id) == expired  # and expired only once
    records = _approval_records(audit_dir)
    assert [(r["event"], r["actor"], r["comment"]) for r in records] == [
        ("opened", "palisade", ""),
        ("expired", "palisade", "deadline passed"),
    ]


@pytest.mark.parametrize("read", ["query", "latest", "changes_after", "expire_due"])
def test_every_read_applies_expiry(approvals: Approvals, store: ApprovalStore, read: str) -> None:
    request = call(SHELL)
    due = due_approval(approvals, request, "shell")
    reads = {
        "query": lambda: approvals.query(Query()),
        "latest": lambda: approvals.latest(due.binding, due.ruleset, due.rule),
        "changes_after": lambda: approvals.changes_after(0),
        "expire_due": approvals.expire_due,
    }
    reads[read]()
    assert store.get(due.id).state is State.EXPIRED


def test_a_late_answer_finds_the_approval_expired(approvals: Approvals, audit_dir: Path) -> None:
    due = due_approval(approvals, call(SHELL), "shell")
    with pytest.raises(AlreadyResolved, match="expired") as refused:
        approvals.resolve(due.id, True, "alice", "sorry, late")
    assert refused.value.approval.resolver == "palisade"
    assert approvals.get(due.id).state is State.EXPIRED
    assert approval_events(audit_dir) == ["opened", "expired"]


def test_opening_again_rejoins_the_pending_approval_or_replaces_an_expired_one(
    approvals: Approvals, audit_dir: Path
) -> None:
    first = approvals.open(_candidate(approvals), "d-1")
    assert approvals.open(_candidate(approvals), "d-2") == first
    due = due_approval(approvals, call(SHELL), "shell")
    now = now_us()
    successor = dataclasses.replace(due, id=new_id(), created_us=now, deadline_us=now + 30 * MINUTE_US)
    replaced = approvals.open(successor, "d-3")
    assert replaced.id != due.id and replaced.state is State.PENDING
    records = _approval_records(audit_dir)
    assert [(r["event"], r["decision"]) for r in records] == [
        ("opened", "d-1"),
        ("opened", "d-due"),
        ("expired", "d-3"),  # expired on the way to opening its successor
        ("opened", "d-3"),
    ]


def test_query_selects_by_queue_and_state_newest_first(approvals: Approvals) -> None:
    a = approvals.open(_candidate(approvals, text="a", queue="dba"), "d")
    b = approvals.open(_candidate(approvals, text="b", queue="sre-oncall"), "d")
    c = approvals.open(_candidate(approvals, text="c", queue="dba"), "d")
    approvals.resolve(c.id, True, "alice", "")
    assert [x.id for x in approvals.query(Query())] == [c.id, b.id, a.id]
    assert [x.id for x in approvals.query(Query(queue="dba"))] == [c.id, a.id]
    assert [x.id for x in approvals.query(Query(queue="dba", state=State.PENDING))] == [a.id]
    assert [x.id for x in approvals.query(Query(state=State.APPROVED))] == [c.id]
    assert [x.id for x in approvals.query(Query(limit=1))] == [c.id]
    assert approvals.query(Query(queue="nobody")) == []


def test_latest_is_the_newest_approval_of_a_rule_for_a_request(approvals: Approvals) -> None:
    first = approvals.open(_candidate(approvals), "d-1")
    approvals.resolve(first.id, False, "bob", "")
    second = approvals.open(_candidate(approvals), "d-2")
    assert second.id != first.id
    latest = approvals.latest(first.binding, "r", "shell")
    assert latest is not None and latest.id == second.id
    assert approvals.latest(first.binding, "r", "other-rule") is None
    assert approvals.latest("0" * 64, "r", "shell") is None


def test_a_single_use_approval_is_used_once_and_only_when_approved(
    approvals: Approvals, audit_dir: Path
) -> None:
    opened = approvals.open(_candidate(approvals), "d-1")
    assert approvals.use(opened, "agent-7", "d-early") is None  # pending: nothing to use
    approved = approvals.resolve(opened.id, True, "alice", "")
    used = approvals.use(approved, "agent-7", "d-2")
    assert used is not None and used.used and used.state is State.APPROVED
    assert approvals.use(approved, "agent-7", "d-3") is None
    records = _approval_records(audit_dir)
    assert [(r["event"], r["actor"], r["decision"]) for r in records] == [
        ("opened", "palisade", "d-1"),
        ("approved", "alice", ""),
        ("used", "agent-7", "d-2"),
    ]


def test_a_denied_approval_cannot_be_used(approvals: Approvals) -> None:
    opened = approvals.open(_candidate(approvals), "d-1")
    denied = approvals.resolve(opened.id, False, "bob", "")
    assert approvals.use(denied, "agent-7", "d-2") is None
    assert not approvals.get(opened.id).used


def test_a_replay_is_recorded_without_changing_the_approval(approvals: Approvals, audit_dir: Path) -> None:
    opened = approvals.open(_candidate(approvals), "d-1")
    approvals.record_replay(opened, "mallory", "d-2")
    assert approvals.get(opened.id) == opened
    [_, replay] = _approval_records(audit_dir)
    assert (replay["event"], replay["actor"], replay["decision"], replay["comment"]) == (
        "replay",
        "mallory",
        "d-2",
        "presented with a request it is not bound to",
    )


def test_prune_deletes_answered_approvals_keep_s_past_their_deadline(
    store: ApprovalStore, audit: AuditLog, audit_dir: Path
) -> None:
    approvals = Approvals(store, audit, keep_s=60.0)
    long_gone = approvals.open(_candidate(approvals, text="1", deadline_in_us=-5 * MINUTE_US), "d")
    just_gone = approvals.open(_candidate(approvals, text="2", deadline_in_us=-MINUTE_US // 4), "d")
    answered = approvals.open(_candidate(approvals, text="3"), "d")
    approvals.resolve(answered.id, False, "bob", "")
    pending = approvals.open(_candidate(approvals, text="4"), "d")

    assert approvals.prune() == 1
    with pytest.raises(ApprovalNotFound):
        approvals.get(long_gone.id)
    assert approvals.get(just_gone.id).state is State.EXPIRED  # within keep_s of its deadline
    assert approvals.get(answered.id).state is State.DENIED  # its deadline is still ahead
    assert approvals.get(pending.id).state is State.PENDING
    assert long_gone.id not in {c.approval.id for c in approvals.changes_after(0)}
    assert approvals.prune() == 0
    assert approval_events(audit_dir).count("opened") == 4  # the audit log keeps every record


def test_with_no_keep_time_prune_deletes_every_answered_approval_past_its_deadline(
    store: ApprovalStore, audit: AuditLog
) -> None:
    approvals = Approvals(store, audit, keep_s=0.0)
    gone = approvals.open(_candidate(approvals, text="1", deadline_in_us=-1), "d")
    pending = approvals.open(_candidate(approvals, text="2"), "d")
    assert approvals.prune() == 1
    assert [a.id for a in approvals.query(Query())] == [pending.id]
    assert gone.id != pending.id


def test_every_transition_is_in_the_audit_chain_and_it_verifies(
    approvals: Approvals, audit: AuditLog, audit_dir: Path
) -> None:
    approved = approvals.open(_candidate(approvals, text="a"), "d-a")
    denied = approvals.open(_candidate(approvals, text="b"), "d-b")
    cancelled = approvals.open(_candidate(approvals, text="c"), "d-c")
    due = due_approval(approvals, call(ToolCall(name="logs.read")), "reads")
    approvals.resolve(approved.id, True, "alice", "ok")
    approvals.resolve(denied.id, False, "bob", "no")
    approvals.cancel(cancelled.id, "carol", "withdrawn")
    approvals.expire_due()
    used = approvals.use(approvals.get(approved.id), "agent-7", "d-use")
    assert used is not None
    approvals.record_replay(used, "mallory", "d-replay")
    audit.close()  # sign the final checkpoint: every record is covered

    records = _approval_records(audit_dir)
    assert [(r["event"], r["approval"]["id"]) for r in records] == [
        ("opened", approved.id),
        ("opened", denied.id),
        ("opened", cancelled.id),
        ("opened", due.id),
        ("approved", approved.id),
        ("denied", denied.id),
        ("cancelled", cancelled.id),
        ("expired", due.id),
        ("used", approved.id),
        ("replay", approved.id),
    ]
    states = [r["approval"]["state"] for r in records]
    assert states == ["pending"] * 4 + ["approved", "denied", "cancelled", "expired", "approved", "approved"]
    report = verify(audit_dir)
    assert report.ok and report.records == len(records) and report.signed == report.records
