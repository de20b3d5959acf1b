"""Watching approvals: their current state, then every change, by polling the shared store."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from engine.approvals.model import Approval, State
from engine.approvals.service import Approvals
from engine.approvals.store import Query
from engine.runtime.observer import Attributes, observer

POLL_S = 0.05  # the store is shared by every server process, so changes are polled, not signalled


def watch(
    approvals: Approvals,
    *,
    approval_id: str = "",
    queue: str = "",
    active: Callable[[], bool],
    poll_s: float = POLL_S,
) -> Iterator[tuple[str, Approval]]:
    """Yield ("current", approval) for one approval (or a queue's pending ones; every queue's when
    ``queue`` is empty), then (event, approval as it is now) for each change, while ``active()``.
    Watching one approval ends once it is no longer pending. Raises ApprovalNotFound for an unknown id.
    The watch is a span of the caller's trace: the approval watched and its state at the end, and how
    many events were given."""
    noted: Attributes = {"palisade.approval.events": 0}
    with observer().span("palisade.approval.watch", noted):
        for given, (event, approval) in enumerate(_watched(approvals, approval_id, queue, active, poll_s), 1):
            noted["palisade.approval.events"] = given
            if approval_id:
                noted.update(approval.traced())
            yield event, approval


def _watched(
    approvals: Approvals, approval_id: str, queue: str, active: Callable[[], bool], poll_s: float
) -> Iterator[tuple[str, Approval]]:
    seq = approvals.store.last_change()  # before the snapshot: a change may come twice, never not at all
    if approval_id:
        current = [approvals.get(approval_id)]
    else:
        current = approvals.query(Query(queue=queue, state=State.PENDING))
    for approval in current:
        yield "current", approval
    if approval_id and not current[0].pending:
        return
    while active():
        time.sleep(poll_s)
        for change in approvals.changes_after(seq):
            seq = change.seq
            if not _selected(change.approval, approval_id, queue):
                continue
            yield change.event, change.approval
            if approval_id and not change.approval.pending:
                return


def _selected(approval: Approval, approval_id: str, queue: str) -> bool:
    if approval_id:
        return approval.id == approval_id
    return not queue or approval.queue == queue
