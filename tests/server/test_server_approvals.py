"""The approval loop through the real server: escalate, answer (CLI or client), resume, all audited."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from server_helpers import HERE, ROOT, config, running

from dsl.types import Outcome
from engine.approvals import State
from engine.audit import AuditPaths
from engine.audit.store import Store
from engine.cli import main as cli
from engine.client.guard_client import CheckResult, GuardClient, GuardError

RULESETS = HERE / "approval_rulesets"
NAME = "approvals_test"
SHELL = {"name": "shell.exec", "arguments": {"cmd": "rm -rf build/"}}
AGENT = {"id": "agent-7", "tenant": "acme"}
WAIT_S = 30.0


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture()
def target(data_dir: Path) -> Iterator[str]:
    with running(config(rulesets=str(RULESETS), data_dir=str(data_dir))) as server:
        yield f"127.0.0.1:{server.port}"


@pytest.fixture()
def client(target: str) -> Iterator[GuardClient]:
    with GuardClient(target, timeout=10.0) as guard:
        yield guard


def _call(client: GuardClient, tool: dict[str, Any] = SHELL, approval_id: str = "") -> CheckResult:
    return client.check(ruleset=NAME, stage="tool_call", tool=tool, principal=AGENT, approval_id=approval_id)


def _escalated(client: GuardClient, tool: dict[str, Any] = SHELL) -> str:
    result = _call(client, tool)
    assert result.outcome is Outcome.ESCALATE and result.escalation is not None
    return result.escalation.approval_id


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _records(data_dir: Path) -> list[dict[str, Any]]:
    store = Store.open_reader(AuditPaths.of(data_dir).database)
    try:
        return [json.loads(row.body) for row in store.records()]
    finally:
        store.close()


def _events(data_dir: Path, approval_id: str) -> list[str]:
    records = _records(data_dir)
    return [r["event"] for r in records if r.get("kind") == "approval" and r["approval"]["id"] == approval_id]


def test_the_full_loop_escalate_approve_with_the_cli_resume_and_audit(
    client: GuardClient, target: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _call(client)
    assert first.outcome is Outcome.ESCALATE and first.escalation is not None
    approval_id = first.escalation.approval_id
    assert first.escalation.queue == "sre-oncall" and first.escalation.deadline is not None
    again = _call(client)
    assert again.escalation is not None and again.escalation.approval_id == approval_id

    code, out, _ = _cli(capsys, "approvals", "list", "--server", target, "--queue", "sre-oncall")
    listed = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [a["id"] for a in listed] == [approval_id] and listed[0]["state"] == "pending"
    assert listed[0]["tool"] == "shell.exec" and listed[0]["principal_id"] == "agent-7"
    approve = ["approvals", "approve", approval_id, "--server", target, "--approver", "alice"]
    code, out, _ = _cli(capsys, *approve, "--comment", "build dir only")
    assert code == 0 and json.loads(out)["state"] == "approved"

    resumed = _call(client, approval_id=approval_id)
    assert resumed.outcome is Outcome.ALLOW
    assert any("alice" in reason and approval_id in reason for reason in resumed.reasons)
    assert _call(client, approval_id=approval_id).outcome is Outcome.BLOCK  # single use

    assert _events(data_dir, approval_id) == ["opened", "approved", "used"]
    records = {r["decision_id"]: r for r in _records(data_dir)}
    approved = next(r for r in records.values() if r.get("event") == "approved")
    assert approved["actor"] == "alice" and approved["comment"] == "build dir only"
    assert records[resumed.decision_id]["approval_id"] == approval_id
    assert records[resumed.decision_id]["outcome"] == "allow"
    assert _cli(capsys, "audit", "verify", "--data-dir", str(data_dir))[0] == 0


def test_a_denied_approval_blocks_the_resumed_call(
    client: GuardClient, target: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    approval_id = _escalated(client)
    deny = ["approvals", "deny", approval_id, "--server", target, "--approver", "bob", "--comment", "no"]
    assert _cli(capsys, *deny)[0] == 0
    resumed = _call(client, approval_id=approval_id)
    assert resumed.outcome is Outcome.BLOCK and any("bob" in r for r in resumed.reasons)
    assert _events(data_dir, approval_id) == ["opened", "denied"]


def test_an_unanswered_approval_expires_at_its_deadline_and_blocks(
    client: GuardClient, data_dir: Path
) -> None:
    approval_id = _escalated(client, {"name": "deploy.now", "arguments": {"env": "prod"}})
    assert client.wait_for_approval(approval_id, timeout=WAIT_S).state is State.EXPIRED
    assert (
        _call(client, {"name": "deploy.now", "arguments": {"env": "prod"}}, approval_id).outcome
        is Outcome.BLOCK
    )
    with pytest.raises(GuardError) as refused:
        client.resolve_approval(approval_id, approve=True, approver="late")
    assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert _events(data_dir, approval_id) == ["opened", "expired"]


def test_else_allow_lets_the_call_through_when_nobody_answers(client: GuardClient) -> None:
    read = {"name": "logs.read", "arguments": {"since": "1h"}}
    approval_id = _escalated(client, read)
    assert client.wait_for_approval(approval_id, timeout=WAIT_S).state is State.EXPIRED
    assert _call(client, read, approval_id).outcome is Outcome.ALLOW


def test_a_reusable_approval_holds_for_every_resumed_call(client: GuardClient) -> None:
    listing = {"name": "fs.list", "arguments": {"path": "/srv"}}
    approval_id = _escalated(client, listing)
    assert not client.get_approval(approval_id).single_use
    client.resolve_approval(approval_id, approve=True, approver="alice")
    assert [_call(client, listing, approval_id).outcome for _ in range(3)] == [Outcome.ALLOW] * 3
    assert not client.get_approval(approval_id).used


def test_a_cancelled_approval_blocks_and_cannot_be_approved(
    client: GuardClient, target: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    approval_id = _escalated(client)
    assert client.cancel_approval(approval_id, actor="agent-7", comment="gave up").state is State.CANCELLED
    assert _call(client, approval_id=approval_id).outcome is Outcome.BLOCK
    code, _, err = _cli(
        capsys, "approvals", "approve", approval_id, "--server", target, "--approver", "alice"
    )
    assert code == 1 and "already resolved" in err
    assert _events(data_dir, approval_id) == ["opened", "cancelled"]


def test_an_approval_presented_with_changed_arguments_is_refused_as_a_replay(
    client: GuardClient, data_dir: Path
) -> None:
    approval_id = _escalated(client)
    client.resolve_approval(approval_id, approve=True, approver="alice")
    other = {"name": "shell.exec", "arguments": {"cmd": "rm -rf /"}}
    replayed = _call(client, other, approval_id)
    assert replayed.outcome is Outcome.BLOCK and any("another request" in r for r in replayed.reasons)
    assert _call(client, {"name": "fs.read", "arguments": {}}, approval_id).outcome is Outcome.BLOCK
    assert _call(client, approval_id=approval_id).outcome is Outcome.ALLOW  # the bound call still may
    assert _events(data_dir, approval_id) == ["opened", "approved", "replay", "replay", "used"]
    replay = next(r for r in _records(data_dir) if r.get("event") == "replay")
    assert replay["decision"] == replayed.decision_id and replay["actor"] == "agent-7"


def test_a_call_two_rules_escalate_needs_both_approvals(client: GuardClient) -> None:
    migrate = {"name": "db.migrate", "arguments": {"to": "0042"}}
    first = _escalated(client, migrate)
    (second,) = [a for a in client.list_approvals(queue="sre-oncall") if a.tool == "db.migrate"]
    assert client.get_approval(first).queue == "dba" and second.id != first
    client.resolve_approval(first, approve=True, approver="dana")
    waiting = _call(client, migrate, first)
    assert waiting.outcome is Outcome.ESCALATE and waiting.escalation is not None
    assert waiting.escalation.approval_id == second.id and waiting.escalation.queue == "sre-oncall"
    client.resolve_approval(second.id, approve=True, approver="sam")
    assert _call(client, migrate, second.id).outcome is Outcome.ALLOW
    assert client.get_approval(first).used and client.get_approval(second.id).used


def test_an_unknown_approval_id_blocks(client: GuardClient) -> None:
    assert _call(client, approval_id="0190a0b0-0000-7000-8000-000000000000").outcome is Outcome.BLOCK


def test_the_approvals_service_names_bad_calls(client: GuardClient) -> None:
    approval_id = _escalated(client)
    for call, code in (
        (lambda: client.get_approval("no-such-id"), grpc.StatusCode.NOT_FOUND),
        (lambda: list(client.watch_approvals(approval_id="no-such-id")), grpc.StatusCode.NOT_FOUND),
        (
            lambda: client.resolve_approval(approval_id, approve=True, approver=""),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (lambda: client.cancel_approval(approval_id, actor=""), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(GuardError) as refused:
            call()
        assert refused.value.code is code
    assert client.get_approval(approval_id).state is State.PENDING


def test_an_approval_survives_a_restart_between_escalation_and_approval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(rulesets=str(RULESETS), data_dir=str(tmp_path))
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}") as before:
        approval_id = _escalated(before)
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}") as after:
        assert after.get_approval(approval_id).state is State.PENDING
        assert _escalated(after) == approval_id
        after.resolve_approval(approval_id, approve=True, approver="alice")
        assert _call(after, approval_id=approval_id).outcome is Outcome.ALLOW
    assert _events(tmp_path, approval_id) == ["opened", "approved", "used"]
    assert _cli(capsys, "audit", "verify", "--data-dir", str(tmp_path))[0] == 0


def test_two_approvers_at_once_exactly_one_wins(client: GuardClient, target: str, data_dir: Path) -> None:
    approval_id = _escalated(client)
    start = threading.Barrier(2)
    results: dict[str, str] = {}

    def answer(approver: str, approve: bool) -> None:
        with GuardClient(target, timeout=10.0) as own:
            start.wait()
            try:
                own.resolve_approval(approval_id, approve=approve, approver=approver)
                results[approver] = "won"
            except GuardError as exc:
                results[approver] = exc.details

    threads = [threading.Thread(target=answer, args=args) for args in (("alice", True), ("bob", False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [name for name, result in results.items() if result == "won"]
    assert len(winners) == 1
    loser = "bob" if winners == ["alice"] else "alice"
    assert "already resolved" in results[loser]
    assert client.get_approval(approval_id).resolver == winners[0]
    assert len(_events(data_dir, approval_id)) == 2


def test_watch_delivers_the_change_to_a_waiting_agent(client: GuardClient, target: str) -> None:
    approval_id = _escalated(client)
    events = client.watch_approvals(approval_id=approval_id, timeout=WAIT_S)
    event, current = next(events)
    assert event == "current" and current.state is State.PENDING
    with GuardClient(target) as approver:
        approver.resolve_approval(approval_id, approve=True, approver="carol", comment="ok")
    event, changed = next(events)
    assert event == "approved" and changed.state is State.APPROVED and changed.resolver == "carol"
    assert list(events) == []


def test_a_queue_watch_gives_the_pending_approvals_then_new_ones(client: GuardClient) -> None:
    waiting = _escalated(client, {"name": "deploy.now", "arguments": {"env": "staging"}})
    events = client.watch_approvals(queue="release", timeout=WAIT_S)
    assert [(e, a.id) for e, a in [next(events)]] == [("current", waiting)]
    opened = _escalated(client, {"name": "deploy.now", "arguments": {"env": "canary"}})
    assert next((e for e, a in events if a.id == opened), None) == "opened"


def test_the_shipped_coding_agent_ruleset_escalates_into_the_loop(tmp_path: Path) -> None:
    cfg = config(rulesets=str(ROOT / "rulesets" / "coding_agent.pal"), data_dir=str(tmp_path))
    write = {"name": "fs.write", "arguments": {"path": "/etc/motd", "content": "maintenance at 5pm"}}
    admin = {"id": "ops-lee", "roles": ["developer", "admin"]}
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}") as guard:

        def ask(approval_id: str = "") -> CheckResult:
            return guard.check(
                ruleset="coding_agent",
                stage="tool_call",
                tool=write,
                principal=admin,
                approval_id=approval_id,
            )

        first = ask()
        assert first.outcome is Outcome.ESCALATE and first.escalation is not None
        assert first.deciding_rules == ("workspace_writes",)
        approval_id = first.escalation.approval_id
        guard.resolve_approval(approval_id, approve=True, approver="sre-kim", comment="motd only")
        assert ask(approval_id).outcome is Outcome.ALLOW
    assert _events(tmp_path, approval_id) == ["opened", "approved", "used"]
