"""Approvals: the lifecycle over the store, every transition recorded in the audit log as it happens."""

from __future__ import annotations

import logging
from dataclasses import replace

from engine.approvals.model import AlreadyResolved, Approval, Change, State, now_us
from engine.approvals.store import ApprovalStore, Query, Recorder
from engine.audit import AuditLog
from engine.runtime.observer import Attributes, observer

log = logging.getLogger("palisade.approvals")
ENGINE_ACTOR = "palisade"
DEFAULT_KEEP_S = 30 * 86_400.0
_PRUNE_EVERY_US = 3_600 * 1_000_000


class Approvals:
    """The approvals of one data directory. Expiry is applied lazily, whenever approvals are read;
    answered ones are deleted ``keep_s`` after their deadline, checked at most hourly on opening."""

    def __init__(self, store: ApprovalStore, audit: AuditLog, keep_s: float = DEFAULT_KEEP_S) -> None:
        self.store = store
        self.audit = audit
        self._keep_us = int(keep_s * 1_000_000)
        self._pruned_us = 0

    def _recorder(self, actor: str = ENGINE_ACTOR, comment: str = "", decision_id: str = "") -> Recorder:
        def record(event: str, approval: Approval) -> None:
            who, why = (approval.resolver, approval.comment) if event in _RESOLVED else (actor, comment)
            self.audit.append_approval(
                event, approval.audit_data(), actor=who, comment=why, decision_id=decision_id
            )
            observer().approval(event, approval.queue)

        return record

    def open(self, candidate: Approval, decision_id: str) -> Approval:
        """The pending approval for ``candidate``'s request and rule, opening ``candidate`` if none."""
        noted: Attributes = dict(candidate.traced())
        with observer().span("palisade.approval.open", noted, decision_id=decision_id):
            if now_us() - self._pruned_us >= _PRUNE_EVERY_US:
                self.prune()
            approval, opened = self.store.open_or_join(candidate, self._recorder(decision_id=decision_id))
            noted.update(approval.traced())
            noted["palisade.approval.result"] = "opened" if opened else "joined"
        return approval

    def get(self, approval_id: str) -> Approval:
        """The approval as it stands now (expired if past its deadline). Raises ApprovalNotFound."""
        self.expire_due()
        return self.store.get(approval_id)

    def latest(self, binding: str, ruleset: str, rule: str) -> Approval | None:
        """The newest approval of ``rule`` for the request with ``binding`` (expired if due)."""
        self.expire_due()
        return self.store.latest(binding, ruleset, rule)

    def query(self, query: Query) -> list[Approval]:
        self.expire_due()
        return self.store.query(query)

    def resolve(self, approval_id: str, approve: bool, approver: str, comment: str) -> Approval:
        """Approve or deny. Raises AlreadyResolved when another answer (or the deadline) came first."""
        to = State.APPROVED if approve else State.DENIED
        return self._finish(approval_id, to, approver, comment)

    def cancel(self, approval_id: str, actor: str, comment: str) -> Approval:
        return self._finish(approval_id, State.CANCELLED, actor, comment)

    def _finish(self, approval_id: str, to: State, actor: str, comment: str) -> Approval:
        """Answer (or cancel) as ``to``, in a span of the caller's trace: the approval, and the result
        (its new state, or already_resolved); never the approver's name or comment."""
        noted: Attributes = {"palisade.approval.answer": to.value}
        with observer().span("palisade.approval.answer", noted):
            current = self.store.get(approval_id)
            noted.update(current.traced())
            try:
                done = self.store.resolve(
                    replace(current, state=to, resolver=actor, comment=comment), now_us(), self._recorder()
                )
            except AlreadyResolved as exc:
                noted.update(exc.approval.traced())
                noted["palisade.approval.result"] = "already_resolved"
                raise
            noted.update(done.traced())
            noted["palisade.approval.result"] = done.state.value
            return done

    def use(self, approval: Approval, actor: str, decision_id: str) -> Approval | None:
        """Use up a single-use approval for the decision ``decision_id``; None if already used."""
        return self.store.use(approval.id, self._recorder(actor, decision_id=decision_id))

    def record_replay(self, approval: Approval, actor: str, decision_id: str) -> None:
        """Record that ``approval`` was presented with a request it is not bound to."""
        comment = "presented with a request it is not bound to"
        self._recorder(actor, comment, decision_id)("replay", approval)

    def prune(self) -> int:
        """Expire the due approvals, then delete those past their deadline by more than ``keep_s``."""
        self.expire_due()
        self._pruned_us = now_us()
        deleted = self.store.prune(self._pruned_us - self._keep_us)
        if deleted:
            log.info("approvals: deleted %d answered approval(s) past their deadline", deleted)
        return deleted

    def expire_due(self) -> list[Approval]:
        return self.store.expire_due(now_us(), self._recorder())

    def changes_after(self, seq: int) -> list[Change]:
        self.expire_due()
        return self.store.changes_after(seq)


_RESOLVED = frozenset({"approved", "denied", "cancelled", "expired"})
