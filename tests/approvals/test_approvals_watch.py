"""Watching approvals (engine.approvals.watch) on a real store: the current state first, then every
change in the order it happened, from this process or another one sharing the database."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from approvals_helpers import LISTING, LOGS, MIGRATE, NAME, SHELL, call, decide, due_approval
from audit_helpers import open_log

from engine.approvals import (
    Approval,
    ApprovalGate,
    ApprovalNotFound,
    Approvals,
    ApprovalStore,
    State,
    watch,
)
from engine.runtime.request import ToolCall

Seen = list[tuple[str, str, State]]
POLLS = 20  # more than enough: every change below is made before the watch polls for it


def _open(gate: ApprovalGate, tool: ToolCall) -> Approval:
    request = call(tool)
    gated = gate.apply(decide(request), request, "d")
    assert gated.approval is not None
    return gated.approval


def _polls(count: int) -> Callable[[], bool]:
    """``active`` for a watch that polls ``count`` more times, then stops."""
    left = [count]

    def active() -> bool:
        left[0] -= 1
        return left[0] >= 0

    return active


def _take(changes: Iterator[tuple[str, Approval]], count: int) -> Seen:
    return [(event, a.id, a.state) for event, a in itertools.islice(changes, count)]


def _all(changes: Iterator[tuple[str, Approval]]) -> Seen:
    return [(event, a.id, a.state) for event, a in changes]


def test_a_queue_watch_gives_its_pending_approvals_then_each_change_in_order(
    gate: ApprovalGate, approvals: Approvals
) -> None:
    first = _open(gate, SHELL)
    second = _open(gate, LISTING)
    elsewhere = _open(gate, LOGS)  # the privacy queue
    approvals.resolve(first.id, False, "bob", "")  # before the watch: not current, not a change

    changes = watch(approvals, queue="sre-oncall", active=_polls(POLLS), poll_s=0)
    assert _take(changes, 1) == [("current", second.id, State.PENDING)]

    third = _open(gate, ToolCall(name="shell.exec", arguments={"cmd": "make"}))
    approvals.resolve(second.id, True, "alice", "")
    approvals.cancel(elsewhere.id, "carol", "")  # another queue: not delivered
    approvals.cancel(third.id, "carol", "")
    fourth = _open(gate, ToolCall(name="shell.exec", arguments={"cmd": "make test"}))

    assert _take(changes, 4) == [
        ("opened", third.id, State.CANCELLED),  # each change comes with the approval as it is now
        ("approved", second.id, State.APPROVED),
        ("cancelled", third.id, State.CANCELLED),
        ("opened", fourth.id, State.PENDING),
    ]


def test_a_watch_of_every_queue_gives_every_change_in_order(gate: ApprovalGate, approvals: Approvals) -> None:
    listing = _open(gate, LISTING)
    changes = watch(approvals, active=_polls(1), poll_s=0)
    assert _take(changes, 1) == [("current", listing.id, State.PENDING)]  # the watch starts here
    shell = _open(gate, SHELL)
    reads = _open(gate, LOGS)
    approvals.resolve(reads.id, True, "alice", "")
    approvals.resolve(shell.id, False, "bob", "")
    approvals.use(approvals.get(reads.id), "agent-7", "d-2")
    assert _all(changes) == [  # all found by one poll, in the order they happened
        ("opened", shell.id, State.DENIED),
        ("opened", reads.id, State.APPROVED),
        ("approved", reads.id, State.APPROVED),
        ("denied", shell.id, State.DENIED),
        ("used", reads.id, State.APPROVED),
    ]


def test_the_current_pending_approvals_come_newest_first(gate: ApprovalGate, approvals: Approvals) -> None:
    dba = _open(gate, MIGRATE)
    shell = _open(gate, SHELL)
    current = _all(watch(approvals, active=_polls(0), poll_s=0))
    sre = approvals.latest(dba.binding, NAME, "migrations_need_sre")
    assert sre is not None
    assert current == [
        ("current", shell.id, State.PENDING),
        ("current", sre.id, State.PENDING),
        ("current", dba.id, State.PENDING),
    ]


def test_a_watch_of_one_approval_ends_once_it_is_answered(gate: ApprovalGate, approvals: Approvals) -> None:
    watched = _open(gate, SHELL)
    other = _open(gate, LOGS)
    changes = watch(approvals, approval_id=watched.id, active=_polls(POLLS), poll_s=0)
    assert _take(changes, 1) == [("current", watched.id, State.PENDING)]
    approvals.resolve(other.id, True, "alice", "")  # not this one
    approvals.resolve(watched.id, True, "alice", "")
    approvals.use(approvals.get(watched.id), "agent-7", "d-2")  # after the end
    assert _all(changes) == [("approved", watched.id, State.APPROVED)]


def test_a_watch_of_an_answered_approval_gives_it_and_ends(gate: ApprovalGate, approvals: Approvals) -> None:
    watched = _open(gate, SHELL)
    approvals.cancel(watched.id, "carol", "")
    assert _all(watch(approvals, approval_id=watched.id, active=_polls(POLLS), poll_s=0)) == [
        ("current", watched.id, State.CANCELLED)
    ]


def test_a_watch_of_an_approval_past_its_deadline_sees_it_expired(approvals: Approvals) -> None:
    due = due_approval(approvals, call(SHELL), "shell")
    assert _all(watch(approvals, approval_id=due.id, active=_polls(POLLS), poll_s=0)) == [
        ("current", due.id, State.EXPIRED)
    ]


def test_an_approval_found_past_its_deadline_while_watched_is_delivered_expired(
    gate: ApprovalGate, approvals: Approvals
) -> None:
    listing = _open(gate, LISTING)
    changes = watch(approvals, queue="sre-oncall", active=_polls(1), poll_s=0)
    assert _take(changes, 1) == [("current", listing.id, State.PENDING)]
    due = due_approval(approvals, call(SHELL), "shell", queue="sre-oncall")  # found due when next read
    assert _all(changes) == [("opened", due.id, State.EXPIRED), ("expired", due.id, State.EXPIRED)]


def test_expiry_applied_by_the_watch_itself_comes_after_its_snapshot(approvals: Approvals) -> None:
    due = due_approval(approvals, call(SHELL), "shell", queue="q")
    changes = watch(approvals, queue="q", active=_polls(1), poll_s=0)
    # the snapshot expires it (so it is not current), and the expiry is then delivered as a change
    assert _all(changes) == [("expired", due.id, State.EXPIRED)]


def test_an_unknown_approval_cannot_be_watched(approvals: Approvals) -> None:
    with pytest.raises(ApprovalNotFound):
        next(watch(approvals, approval_id="no-such", active=_polls(1), poll_s=0))


def test_a_watch_ends_when_it_is_no_longer_active(gate: ApprovalGate, approvals: Approvals) -> None:
    watched = _open(gate, SHELL)
    changes = watch(approvals, approval_id=watched.id, active=_polls(0), poll_s=0)
    assert _all(changes) == [("current", watched.id, State.PENDING)]


def test_changes_made_by_another_process_are_delivered(
    gate: ApprovalGate, approvals: Approvals, tmp_path: Path
) -> None:
    watched = _open(gate, SHELL)
    changes = watch(approvals, approval_id=watched.id, active=_polls(POLLS), poll_s=0)
    assert _take(changes, 1) == [("current", watched.id, State.PENDING)]
    other_store = ApprovalStore.open(tmp_path)  # as another server worker on the same data directory
    other_audit = open_log(tmp_path / "other-audit")
    try:
        Approvals(other_store, other_audit).resolve(watched.id, False, "bob", "no")
    finally:
        other_store.close()
        other_audit.close()
    assert _all(changes) == [("denied", watched.id, State.DENIED)]
