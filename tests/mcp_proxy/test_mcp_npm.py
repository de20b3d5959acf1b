"""`palisade mcp` in front of an MCP server from npm (@modelcontextprotocol/server-filesystem, installed
by `npm ci --prefix tests/mcp_proxy/node`), driven by the SDK's client."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest
from mcp_helpers import HERE, proxied, texts

NODE_DIR = HERE / "node"
FILESYSTEM = NODE_DIR / "node_modules" / ".bin" / "mcp-server-filesystem"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (needed here)")


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    if not FILESYSTEM.exists():
        pytest.fail("tests/mcp_proxy/node has no node_modules: run `npm ci --prefix tests/mcp_proxy/node`")
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.txt").write_text("ask bob@example.com\n")
    return folder


def test_filesystem_server_reads_redacted_and_never_writes(tmp_path: Path, files: Path) -> None:
    target = str(files / "a.txt")

    async def session() -> tuple[str, bool, str]:
        async with proxied(tmp_path, [str(FILESYSTEM), str(files)], "--server", "files") as client:
            read = texts(await client.call_tool("read_text_file", {"path": target}))
            written = await client.call_tool("write_file", {"path": target, "content": "overwritten"})
            return read, bool(written.is_error), texts(written)

    read, refused, why = anyio.run(session)
    assert read.rstrip("\n") == "ask <EMAIL_ADDRESS>"
    assert refused and "files are read-only for the agent (rule read_only_files" in why
    assert (files / "a.txt").read_text() == "ask bob@example.com\n"  # the server never wrote
