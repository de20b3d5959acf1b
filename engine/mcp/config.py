"""The `[mcp]` table: the ruleset, server name and principal of `palisade mcp`, and how long it waits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class McpConfig(BaseModel):
    """Settings of the MCP guard proxy (engine/mcp/); `palisade mcp` flags and environment win."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ruleset: str = ""  # the ruleset every Check of the proxy uses
    server: str = ""  # the MCP server's name, as rules see it in `tool.server`
    principal: str = ""  # principal.id of every Check (env PALISADE_PRINCIPAL wins)
    tenant: str = ""  # principal.tenant (env PALISADE_TENANT)
    roles: tuple[str, ...] = ()  # principal.roles (env PALISADE_ROLES, comma-separated)
    approval_wait_s: float = Field(default=300.0, ge=0.0)  # an escalated call waits, then is refused
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # a longer JSON-RPC line is refused
