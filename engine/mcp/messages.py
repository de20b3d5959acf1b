"""JSON-RPC messages of MCP as the proxy reads and writes them: parsed by the SDK's own types."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mcp.types import jsonrpc_message_adapter
from pydantic import ValidationError

Message = dict[str, Any]
RequestId = int | str

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
BLOCKED = -32003  # implementation-defined: Palisade refused a message that has no isError form


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line that is not one JSON-RPC message: what is wrong, and the id to answer when one was read."""

    problem: str
    code: int
    request_id: RequestId | None = None


def parse(line: bytes) -> Message | Malformed:
    """One line as a JSON-RPC 2.0 message (validated by the MCP SDK's types), or what is wrong with it."""
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.reason
        return Malformed(f"not JSON ({why})", PARSE_ERROR)
    if not isinstance(data, dict):
        return Malformed(f"not a JSON-RPC message object (a JSON {type(data).__name__})", INVALID_REQUEST)
    try:
        jsonrpc_message_adapter.validate_python(data, by_name=False)
    except ValidationError as exc:
        found = data.get("id")
        request_id = found if isinstance(found, int | str) and not isinstance(found, bool) else None
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        return Malformed(f"not a JSON-RPC 2.0 message ({where}: {first['msg']})", INVALID_REQUEST, request_id)
    return data


def encode(message: Message) -> bytes:
    """``message`` as one line of JSON, as MCP's stdio transport frames it."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def is_request(message: Message) -> bool:
    return "method" in message and "id" in message


def is_response(message: Message) -> bool:
    return "method" not in message and ("result" in message or "error" in message)


def error(request_id: RequestId | None, code: int, text: str) -> Message:
    """A JSON-RPC error response."""
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": text}}


def result(request_id: RequestId, value: Message) -> Message:
    """A JSON-RPC result response."""
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def tool_error(request_id: RequestId, text: str) -> Message:
    """A tools/call result the model reads: ``isError`` and one text that says why."""
    return result(request_id, {"content": [{"type": "text", "text": text}], "isError": True})


def progress(token: str | int, count: int, text: str) -> Message:
    """A progress notification for the request that gave ``token``."""
    params = {"progressToken": token, "progress": count, "message": text}
    return {"jsonrpc": "2.0", "method": "notifications/progress", "params": params}
