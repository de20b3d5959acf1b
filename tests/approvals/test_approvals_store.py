"""The approval store and lifecycle on a real data directory: binding, dedupe, expiry, compare-and-set."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from approvals_helpers import pending

from dsl.types import Stage
from engine.approvals import (
    AlreadyResolved,
    Approval,
    ApprovalNotFound,
    Approvals,
    ApprovalStore,
    State,
    binding_digest,
)
from engine.audit import AuditConfig, AuditLog, AuditPaths
from engine.audit.keys import HMAC_KEY_BYTES, Digester, load_verifier
from engine.audit.store import Store, file_lock
from engine.audit.verify import verify_log
from engine.runtime.request import Principal, Request, ToolCall

REQUEST = Request(
    stage=Stage.TOOL_CALL,
    tool=ToolCall(name="shell.exec", arguments={"cmd": "make clean", "env": {"A": 1}}),
    principal=Principal(id="agent-7", tenant="acme"),
)
MINUTE_US = 60 * 1_000_000
KEYED = Digester(b"k" * HMAC_KEY_BYTES).digest


def _candidate(deadline_in_us: int = 30 * MINUTE_US, request: Request = REQUEST) -> Approval:
    return pending(request, KEYED, deadline_in_us=deadline_in_us)


@pytest.fixture()
def approvals(tmp_path: Path) -> Iterator[Approvals]:
    audit = AuditLog.open(tmp_path, AuditConfig(durability="sync"))
    store = ApprovalStore.open(tmp_path)
    yield Approvals(store, audit)
    store.close()
    audit.close()


def _audit_events(data_dir: Path) -> list[str]:
    paths = AuditPaths.of(data_dir)
    store = Store.open_reader(paths.database)
    try:
        assert verify_log(store, load_verifier(paths.public_key)).ok
        return [json.loads(r.body)["event"] for r in store.records()]
    finally:
        store.close()


@pytest.mark.parametrize(
    "change",
    [
        {"stage": Stage.TOOL_RESULT},
        {"principal": Principal(id="agent-8", tenant="acme")},
        {"principal": Principal(id="agent-7", tenant="other")},
        {"text": "some content"},
        {"tool": ToolCall(name="shell.run", arguments=REQUEST.tool.arguments if REQUEST.tool else {})},
        {"tool": ToolCall(name="shell.exec", arguments={"cmd": "make clean", "env": {"A": 2}})},
    ],
)
def test_the_binding_covers_every_part_of_the_request(change: dict[str, object]) -> None:
    assert binding_digest(dataclasses.replace(REQUEST, **change), "r", KEYED) != binding_digest(
        REQUEST, "r", KEYED
    )


def test_the_binding_is_keyed() -> None:
    other_key = Digester(b"o" * HMAC_KEY_BYTES).digest
    assert binding_digest(REQUEST, "r", other_key) != binding_digest(REQUEST, "r", KEYED)


def test_the_binding_ignores_key_order_and_the_request_id() -> None:
    reordered = ToolCall(name="shell.exec", arguments={"env": {"A": 1}, "cmd": "make clean"})
    same = dataclasses.replace(REQUEST, tool=reordered, request_id="r-2", approval_id="x")
    assert binding_digest(same, "r", KEYED) == binding_digest(REQUEST, "r", KEYED)
    assert binding_digest(REQUEST, "other", KEYED) != binding_digest(REQUEST, "r", KEYED)


def test_a_pending_approval_is_rejoined_not_opened_twice(approvals: Approvals, tmp_path: Path) -> None:
    first = approvals.open(_candidate(), "d1")
    assert approvals.open(_candidate(), "d2").id == first.id
    assert _audit_events(tmp_path) == ["opened"]


def test_expiry_is_applied_when_read_and_a_late_answer_is_refused(
    approvals: Approvals, tmp_path: Path
) -> None:
    opened = approvals.open(_candidate(deadline_in_us=0), "d1")
    assert approvals.get(opened.id).state is State.EXPIRED
    with pytest.raises(AlreadyResolved, match="expired"):
        approvals.resolve(opened.id, True, "alice", "")
    assert approvals.open(_candidate(), "d2").id != opened.id
    assert _audit_events(tmp_path) == ["opened", "expired", "opened"]


def test_two_stores_on_one_file_resolve_by_compare_and_set(approvals: Approvals, tmp_path: Path) -> None:
    opened = approvals.open(_candidate(), "d1")
    other_store = ApprovalStore.open(tmp_path)  # as another server process would
    try:
        other = Approvals(other_store, approvals.audit)
        assert other.resolve(opened.id, False, "bob", "no").state is State.DENIED
        with pytest.raises(AlreadyResolved, match="denied"):
            approvals.resolve(opened.id, True, "alice", "yes")
    finally:
        other_store.close()
    assert approvals.get(opened.id).resolver == "bob"


def test_writes_wait_for_the_lock_file_that_other_processes_hold(
    approvals: Approvals, tmp_path: Path
) -> None:
    opened = approvals.open(_candidate(), "d1")
    reader = ApprovalStore.open(tmp_path)  # another process's view (the store itself is busy writing)
    resolved = threading.Event()

    def resolve() -> None:
        approvals.resolve(opened.id, True, "alice", "")
        resolved.set()

    with file_lock(approvals.store.lock_path):  # as another server worker's write would hold it
        answering = threading.Thread(target=resolve)
        answering.start()
        assert not resolved.wait(0.3)  # it waits for the lock, not on SQLite's own write lock
        assert reader.get(opened.id).state is State.PENDING
    assert resolved.wait(10)
    answering.join()
    assert reader.get(opened.id).state is State.APPROVED
    reader.close()


def test_answered_approvals_are_deleted_once_their_deadline_is_older_than_the_keep_time(
    tmp_path: Path,
) -> None:
    audit = AuditLog.open(tmp_path, AuditConfig(durability="sync"))
    store = ApprovalStore.open(tmp_path)
    keeping = Approvals(store, audit, keep_s=60.0)
    try:
        old_answered = keeping.open(_candidate(deadline_in_us=-2 * MINUTE_US), "d1")  # expires when read
        old_pending_request = dataclasses.replace(REQUEST, principal=Principal(id="agent-8", tenant="acme"))
        recent = keeping.open(_candidate(deadline_in_us=-MINUTE_US // 2, request=old_pending_request), "d2")
        live = keeping.open(_candidate(request=dataclasses.replace(REQUEST, text="other")), "d3")
        assert keeping.prune() == 1  # the approval whose deadline passed more than a minute ago
        with pytest.raises(ApprovalNotFound):
            keeping.get(old_answered.id)
        assert keeping.get(recent.id).state is State.EXPIRED  # within the keep time
        assert keeping.get(live.id).state is State.PENDING  # pending: never deleted
        assert [c.approval.id for c in keeping.changes_after(0)] == [recent.id, live.id, recent.id]
    finally:
        store.close()
        audit.close()
    assert _audit_events(tmp_path) == ["opened", "opened", "opened", "expired", "expired"]  # all kept


def test_opening_an_approval_prunes_first_once_an_hour(approvals: Approvals, tmp_path: Path) -> None:
    old = approvals.open(_candidate(deadline_in_us=-2 * MINUTE_US), "d1")
    approvals.expire_due()
    restarted = Approvals(approvals.store, approvals.audit, keep_s=60.0)  # a new process, say
    restarted.open(_candidate(request=dataclasses.replace(REQUEST, text="other")), "d2")
    with pytest.raises(ApprovalNotFound):
        restarted.get(old.id)


def test_approvals_outlive_the_store(tmp_path: Path, approvals: Approvals) -> None:
    opened = approvals.open(_candidate(), "d1")
    approvals.resolve(opened.id, True, "alice", "fine")
    reopened = ApprovalStore.open(tmp_path)
    try:
        again = reopened.get(opened.id)
    finally:
        reopened.close()
    assert again.state is State.APPROVED and again.comment == "fine" and again.resolved_us > 0


def test_a_single_use_approval_is_used_once(approvals: Approvals) -> None:
    opened = approvals.open(_candidate(), "d1")
    approved = approvals.resolve(opened.id, True, "alice", "")
    assert approvals.use(approved, "agent-7", "d2") is not None
    assert approvals.use(approved, "agent-7", "d3") is None
