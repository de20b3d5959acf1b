"""Helpers for the MCP proxy tests: `palisade mcp` in front of a real server, driven by the SDK's client."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from cli_helpers import audit_query
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_client import BIN, ROOT, client_environment

HERE = Path(__file__).resolve().parent
RULESETS = HERE / "rulesets"
NOTES_SERVER = (sys.executable, str(HERE / "notes_server.py"))


def proxy_command(data_dir: Path, server: Sequence[str], *flags: str) -> list[str]:
    """`palisade mcp` with the test rulesets and ``data_dir``, in front of the ``server`` command."""
    return [
        sys.executable,
        "-m",
        "engine.cli.main",
        "mcp",
        "--ruleset",
        "mcp_agent",
        "--rulesets",
        str(RULESETS),
        "--data-dir",
        str(data_dir),
        *flags,
        "--",
        *server,
    ]


@asynccontextmanager
async def proxied(
    data_dir: Path, server: Sequence[str], *flags: str, errlog: TextIO = sys.stderr
) -> AsyncIterator[ClientSession]:
    """An initialized SDK client session through `palisade mcp` in front of ``server``."""
    command = proxy_command(data_dir, server, *flags)
    params = StdioServerParameters(
        command=command[0], args=command[1:], env=client_environment(), cwd=str(ROOT)
    )
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def texts(result: Any) -> str:
    """The text blocks of a tools/call result, joined."""
    return "\n".join(block.text for block in result.content if block.type == "text")


def audit_records(data_dir: Path) -> list[dict[str, Any]]:
    """The audit records of the proxy's ruleset in ``data_dir`` (`palisade audit query`)."""
    return audit_query(data_dir, "--ruleset", "mcp_agent")


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its output."""
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def make_repo(path: Path) -> Path:
    """A git repository: one commit (whose message names test@example.com), one file staged."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    (path / "README.md").write_text("hello\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "first, reviewed by test@example.com")
    (path / "staged.txt").write_text("staged\n")
    git(path, "add", "staged.txt")
    return path


def git_server(repo: Path) -> list[str]:
    return [str(BIN / "mcp-server-git"), "--repository", str(repo)]
