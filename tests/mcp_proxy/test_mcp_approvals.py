"""An escalated tools/call waits in `palisade mcp` until `palisade approvals` answers it on a running server
that shares the proxy's data directory; approved, the server runs it; denied, it never sees it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import anyio
import pytest
from cli_helpers import palisade
from mcp_helpers import RULESETS, git, git_server, make_repo, proxied, texts
from server_helpers import serve_process


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    """`palisade serve` on the proxy's data directory: where `palisade approvals` answers."""
    with serve_process(
        "--rulesets", str(RULESETS), "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0"
    ) as serve:
        yield serve.wait_ready()


async def _answer(server: str, verb: str) -> str:
    """Wait for the pending approval, then approve or deny it with `palisade approvals`."""
    for _ in range(300):
        listed = await anyio.to_thread.run_sync(
            lambda: palisade("approvals", "list", "--server", server, "--state", "pending")
        )
        pending = [json.loads(line) for line in listed.stdout.splitlines()]
        if pending:
            approval_id = str(pending[0]["id"])
            answer = ("approvals", verb, approval_id, "--server", server, "--approver", "rita")
            done = await anyio.to_thread.run_sync(partial(palisade, *answer))
            assert done.returncode == 0, done.stderr
            return approval_id
        await anyio.sleep(0.1)
    raise AssertionError("no approval was opened")


def _escalated(tmp_path: Path, server: str, verb: str) -> tuple[bool, str, list[str], str]:
    repo = make_repo(tmp_path / "repo")
    progress: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async def session() -> tuple[bool, str, str]:
        async with proxied(tmp_path, git_server(repo), "--approval-wait", "60") as client:
            approval_id = ""
            async with anyio.create_task_group() as group:

                async def answer() -> None:
                    nonlocal approval_id
                    approval_id = await _answer(server, verb)

                group.start_soon(answer)
                result = await client.call_tool(
                    "git_create_branch",
                    {"repo_path": str(repo), "branch_name": "feature"},
                    progress_callback=on_progress,
                )
            return bool(result.is_error), texts(result), approval_id

    is_error, text, approval_id = anyio.run(session)
    return is_error, text, progress, approval_id if git(repo, "branch", "--list", "feature") else ""


def test_approved_call_goes_through(tmp_path: Path, server: str) -> None:
    is_error, text, progress, created_for = _escalated(tmp_path, server, "approve")
    assert not is_error, text
    assert created_for  # the branch exists: the server ran the call once it was approved
    assert any(created_for in message for message in progress)  # the client saw why it waited


def test_denied_call_never_reaches_the_server(tmp_path: Path, server: str) -> None:
    is_error, text, _, created_for = _escalated(tmp_path, server, "deny")
    assert is_error and not created_for
    assert "rule reviewed_branches" in text and "denied" in text
