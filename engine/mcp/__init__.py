"""The MCP front door: `palisade mcp`, a guard proxy between an agent and an MCP server."""
