"""Approver tokens: with an approvers file, only a known token answers, under its approver's name."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from server_helpers import HERE, config, running

from dsl.types import Outcome
from engine.approvals import State
from engine.approvals.approvers import Approvers, ApproversError, token_digest
from engine.cli import main as cli
from engine.client.guard_client import GuardClient, GuardError
from engine.config import ApprovalsConfig
from engine.guard import StartError
from engine.server.app import GuardServer

RULESETS = HERE / "approval_rulesets"
SHELL = {"name": "shell.exec", "arguments": {"cmd": "rm -rf build/"}}
AGENT = {"id": "agent-7", "tenant": "acme"}
ALICE, BOB = "alice-token-for-tests", "bob-token-for-tests"


def _write(path: Path, **approvers: str) -> Path:
    lines = ["[approvers]", *(f'{name} = "{token_digest(token)}"' for name, token in approvers.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def guarded(tmp_path: Path) -> Iterator[tuple[GuardServer, GuardClient]]:
    approvers = _write(tmp_path / "approvers.toml", alice=ALICE, bob=BOB)
    approvals = ApprovalsConfig(approvers_file=str(approvers))
    cfg = config(rulesets=str(RULESETS), data_dir=str(tmp_path / "data"), approvals=approvals)
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}", timeout=10.0) as client:
        yield server, client


def _escalated(client: GuardClient) -> str:
    result = client.check(ruleset="approvals_test", stage="tool_call", tool=SHELL, principal=AGENT)
    assert result.outcome is Outcome.ESCALATE and result.escalation is not None
    return result.escalation.approval_id


def _refused(call: object, code: grpc.StatusCode, message: str) -> None:
    assert callable(call)
    with pytest.raises(GuardError) as refused:
        call()
    assert refused.value.code is code and message in refused.value.details


def test_answering_needs_a_known_token_and_is_recorded_under_its_approver(
    guarded: tuple[GuardServer, GuardClient],
) -> None:
    _, client = guarded
    approval_id = _escalated(client)
    resolve = client.resolve_approval
    _refused(
        lambda: resolve(approval_id, approve=True, approver="alice"),
        grpc.StatusCode.UNAUTHENTICATED,
        "no approver token",
    )
    _refused(
        lambda: resolve(approval_id, approve=True, token="guess"),
        grpc.StatusCode.UNAUTHENTICATED,
        "unknown approver token",
    )
    _refused(
        lambda: resolve(approval_id, approve=True, approver="alice", token=BOB),
        grpc.StatusCode.PERMISSION_DENIED,
        "the token is bob's, not alice's",
    )
    assert client.get_approval(approval_id).state is State.PENDING  # nothing above changed it

    approved = resolve(approval_id, approve=True, token=ALICE, comment="ok")
    assert approved.state is State.APPROVED and approved.resolver == "alice"
    resumed = client.check(
        ruleset="approvals_test", stage="tool_call", tool=SHELL, principal=AGENT, approval_id=approval_id
    )
    assert resumed.outcome is Outcome.ALLOW and any("alice" in reason for reason in resumed.reasons)


def test_the_cli_answers_with_the_token_from_the_environment(
    guarded: tuple[GuardServer, GuardClient],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, client = guarded
    approval_id = _escalated(client)
    deny = ["approvals", "deny", approval_id, "--server", f"127.0.0.1:{server.port}"]
    assert cli.main(deny) == 1
    assert "no approver token" in capsys.readouterr().err
    monkeypatch.setenv("PALISADE_APPROVER_TOKEN", BOB)
    assert cli.main(deny) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["state"] == "denied" and answer["resolver"] == "bob"


def test_the_token_command_prints_a_token_that_its_line_lets_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["approvals", "token", "carol"]) == 0
    out = capsys.readouterr().out.splitlines()
    token = next(line.split("=", 1)[1] for line in out if line.startswith("PALISADE_APPROVER_TOKEN="))
    entry = next(line for line in out if line.startswith("carol = "))
    (tmp_path / "approvers.toml").write_text(f"[approvers]\n{entry}\n")
    approvers = Approvers.load(tmp_path / "approvers.toml")
    assert approvers.identify(token) == "carol" and approvers.identify(token + "x") is None
    assert token not in (tmp_path / "approvers.toml").read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[approvers\n", "not valid TOML"),
        ("alice = 'sha256:00'\n", "one [approvers] table"),
        ("[approvers]\nalice = 'sha256:00'\n", 'approver alice: expected "sha256:"'),
        ("[approvers]\n'al ice' = 'sha256:" + "0" * 64 + "'\n", "approver 'al ice': a name is"),
        (
            f"[approvers]\na = '{token_digest('t')}'\nb = '{token_digest('t')}'\n",
            "b and a have the same token",
        ),
    ],
)
def test_a_bad_approvers_file_is_named_and_stops_the_server_starting(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "approvers.toml"
    path.write_text(text)
    with pytest.raises(ApproversError, match=r"approvers\.toml") as bad:
        Approvers.load(path)
    assert message in str(bad.value)
    with pytest.raises(StartError, match="approvers_file"):
        GuardServer(config(rulesets=str(RULESETS), approvals=ApprovalsConfig(approvers_file=str(path))))


def test_a_missing_approvers_file_fails_start(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    assert not os.path.exists(missing)
    with pytest.raises(StartError, match="cannot read the approvers file"):
        GuardServer(config(rulesets=str(RULESETS), approvals=ApprovalsConfig(approvers_file=str(missing))))


def test_a_reload_reads_the_approvers_file_again_and_a_broken_one_changes_nothing(
    guarded: tuple[GuardServer, GuardClient], tmp_path: Path
) -> None:
    server, client = guarded
    approval_id = _escalated(client)
    _write(tmp_path / "approvers.toml", bob=BOB)  # alice's token is revoked
    assert server.reload()
    _refused(
        lambda: client.resolve_approval(approval_id, approve=True, token=ALICE),
        grpc.StatusCode.UNAUTHENTICATED,
        "unknown approver token",
    )
    (tmp_path / "approvers.toml").write_text('[approvers]\nbob = "not a digest"\n')
    assert not server.reload()  # refused: bob stays, and nobody else gets in
    _refused(
        lambda: client.resolve_approval(approval_id, approve=True, token="guess"),
        grpc.StatusCode.UNAUTHENTICATED,
        "unknown approver token",
    )
    (tmp_path / "approvers.toml").unlink()
    assert not server.reload()
    approved = client.resolve_approval(approval_id, approve=True, token=BOB)
    assert approved.state is State.APPROVED and approved.resolver == "bob"
