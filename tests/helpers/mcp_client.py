"""The MCP SDK's own client over stdio, for tests that start an MCP server (or `palisade mcp`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # where the registry's MCP servers (mcp-server-git, ...) are installed


def client_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment with this checkout importable and the venv's programs first on PATH."""
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return os.environ | {"PYTHONPATH": str(ROOT), "PATH": path} | dict(extra or {})


async def list_tools(command: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """Start ``command`` in ``cwd``, initialize an MCP session with it and list its tools' names."""
    params = StdioServerParameters(
        command=command[0], args=list(command[1:]), env=client_environment(env), cwd=str(cwd)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return [tool.name for tool in (await session.list_tools()).tools]
