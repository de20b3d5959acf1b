"""Approvals across `palisade serve --workers 2`: one store shared by the workers, answered by the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from server_helpers import HERE, ROOT, serve_process

from dsl.types import Outcome
from engine.client.guard_client import CheckResult, GuardClient

RULESETS = HERE / "approval_rulesets"
SHELL = {"name": "shell.exec", "arguments": {"cmd": "make deploy"}}


def _palisade(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "engine.cli.main", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def _fresh_check(target: str, approval_id: str = "") -> CheckResult:
    """A Check on a connection of its own, so that the workers share the calls."""
    with GuardClient(target, timeout=10.0) as client:
        return client.check(
            ruleset="approvals_test",
            stage="tool_call",
            tool=SHELL,
            principal={"id": "a"},
            approval_id=approval_id,
        )


def test_workers_share_approvals_and_the_cli_answers_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ["--rulesets", str(RULESETS), "--listen", "127.0.0.1:0", "--data-dir", str(data), "--workers", "2"]
    with serve_process(*args) as server:
        target = server.wait_ready()
        ids = set()
        for _ in range(6):
            result = _fresh_check(target)
            assert result.outcome is Outcome.ESCALATE and result.escalation is not None
            ids.add(result.escalation.approval_id)
        (approval_id,) = ids
        listed = _palisade("approvals", "list", "--server", target, "--state", "pending")
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [approval_id]
        approve = ["approvals", "approve", approval_id, "--server", target, "--approver", "alice"]
        assert _palisade(*approve, "--comment", "ok").returncode == 0
        again = _palisade(*approve)
        assert again.returncode == 1 and "already resolved" in again.stderr
        watched = _palisade("approvals", "watch", approval_id, "--server", target, "--for", "30")
        assert [json.loads(line)["state"] for line in watched.stdout.splitlines()] == ["approved"]
        assert _fresh_check(target, approval_id).outcome is Outcome.ALLOW
        assert _fresh_check(target, approval_id).outcome is Outcome.BLOCK
    verified = _palisade("audit", "verify", "--data-dir", str(data))
    assert verified.returncode == 0, verified.stderr
