"""What the proxy does with each guarded MCP method: tools/call both ways, tools/list, resources, prompts."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    GetPromptResult,
    ListToolsResult,
    ReadResourceResult,
)
from pydantic import BaseModel, ValidationError

from dsl.types import Stage
from engine.mcp import messages as m
from engine.mcp.checks import McpChecks, Progress, Ruling, canonical
from engine.mcp.config import McpConfig
from engine.mcp.pins import Pins
from engine.runtime.observer import observer

log = logging.getLogger("palisade.mcp")

GUARDED_RESULTS = ("tools/call", "tools/list", "resources/read", "prompts/get")
_TRACE_KEYS = ("traceparent", "tracestate")


@dataclass(frozen=True, slots=True)
class Asked:
    """A request the proxy passed on and whose answer it checks: the method, and a call's tool."""

    method: str
    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    uri: str = ""


@dataclass(frozen=True, slots=True)
class Passed:
    """A request to pass on (rewritten where a rule redacts), or the answer given in its place."""

    forward: m.Message | None = None
    answer: m.Message | None = None
    asked: Asked | None = None


def _trace_context(message: m.Message) -> list[tuple[str, str]]:
    """The W3C trace context of a request: ``params._meta.traceparent`` (and ``tracestate``), where
    MCP clients propagate it (OpenTelemetry's MCP conventions)."""
    meta = (message.get("params") or {}).get("_meta")
    if not isinstance(meta, dict):
        return []
    return [(key, value) for key, value in meta.items() if key in _TRACE_KEYS and isinstance(value, str)]


class Guarded:
    """The Checks of one proxied session, and what it remembers across messages: each tool as first
    seen (``pins``: so that a changed title, description or schema is reported) and the tools hidden."""

    def __init__(self, checks: McpChecks, config: McpConfig, pins: Pins | None = None) -> None:
        self.checks = checks
        self.config = config
        self.pins = pins or Pins(None)
        self.hidden: dict[str, str] = {}  # tool name -> why tools/list hid it

    def request(
        self, message: m.Message, progress: Progress | None = None, stop: threading.Event | None = None
    ) -> Passed:
        """A client's request: tools/call is checked at `tool_call` (and may wait for an approval);
        the methods whose answers are checked are remembered; any other passes as it is."""
        method = message["method"]
        if method == "tools/call":
            return self._call(message, progress, stop)
        if method in GUARDED_RESULTS:
            uri = str((message.get("params") or {}).get("uri", ""))
            return Passed(forward=message, asked=Asked(method, uri=uri))
        return Passed(forward=message)

    def _call(self, message: m.Message, progress: Progress | None, stop: threading.Event | None) -> Passed:
        request_id = message["id"]
        try:
            params = CallToolRequestParams.model_validate(message.get("params") or {}, by_name=False)
        except ValidationError as exc:
            return Passed(answer=m.error(request_id, m.INVALID_PARAMS, f"tools/call: {_problem(exc)}"))
        name, arguments = params.name, dict(params.arguments or {})
        if name in self.hidden:
            return Passed(answer=m.tool_error(request_id, self.hidden[name]))
        with observer().traced(_trace_context(message)):  # its Checks and its wait join the caller's trace
            ruling = self.checks.rule(
                Stage.TOOL_CALL,
                [canonical(arguments)],
                f"the call of tool {name!r}",
                tool=(name, arguments),
                metadata={"mcp_method": "tools/call"},
                wait_s=self.config.approval_wait_s,
                progress=progress,
                stop=stop,
            )
        if ruling.reply is not None:
            return Passed(answer=m.result(request_id, {"content": [{"type": "text", "text": ruling.reply}]}))
        if not ruling.allowed:
            return Passed(answer=m.tool_error(request_id, ruling.message))
        if ruling.texts[0] != canonical(arguments):
            redacted = _json_object(ruling.texts[0])
            if redacted is None:
                return Passed(
                    answer=m.tool_error(request_id, f"{_redacted_by(ruling)}; the call cannot be redacted")
                )
            arguments = redacted
            message = message | {"params": message["params"] | {"arguments": arguments}}
        return Passed(forward=message, asked=Asked("tools/call", name, arguments))

    def response(self, asked: Asked, message: m.Message) -> m.Message:
        """The server's answer to ``asked``, checked; an error answer passes as it is."""
        if "result" not in message:
            return message
        handler: Callable[[Asked, m.Message], m.Message] = {
            "tools/call": self._called,
            "tools/list": self._listed,
            "resources/read": self._read,
            "prompts/get": self._prompt,
        }[asked.method]
        return handler(asked, message)

    def _called(self, asked: Asked, message: m.Message) -> m.Message:
        value, request_id = message["result"], message["id"]
        if (problem := _invalid(CallToolResult, value)) is not None:
            return m.tool_error(request_id, f"Palisade refused the result of tool {asked.tool!r}: {problem}")
        texts = _content_texts(value.get("content", []))
        if "structuredContent" in value:
            texts.append(canonical(value["structuredContent"]))
        ruling = self.checks.rule(
            Stage.TOOL_RESULT,
            texts,
            f"the result of tool {asked.tool!r}",
            tool=(asked.tool, asked.arguments),
            metadata={"mcp_method": "tools/call"},
        )
        if ruling.reply is not None:
            return m.tool_error(request_id, ruling.reply)
        if not ruling.allowed:
            return m.tool_error(request_id, ruling.message)
        if ruling.texts == tuple(texts):
            return message
        rewritten = dict(value)
        pieces = list(ruling.texts)
        if "structuredContent" in value:
            try:
                rewritten["structuredContent"] = json.loads(pieces.pop())
            except json.JSONDecodeError:
                return m.tool_error(request_id, f"{_redacted_by(ruling)}; the result cannot be redacted")
        rewritten["content"] = _with_texts(value.get("content", []), pieces)
        return m.result(request_id, rewritten)

    def _listed(self, asked: Asked, message: m.Message) -> m.Message:
        value = message["result"]
        if (problem := _invalid(ListToolsResult, value)) is not None:
            return m.error(message["id"], m.BLOCKED, f"Palisade refused the tools/list answer: {problem}")
        kept = [tool for tool in (self._tool(t) for t in value.get("tools", [])) if tool is not None]
        return m.result(message["id"], value | {"tools": kept})

    def _tool(self, tool: dict[str, Any]) -> dict[str, Any] | None:
        """A listed tool as the client may see it (its description redacted), or None: hidden."""
        name = str(tool.get("name", ""))
        definition = {k: tool.get(k) for k in ("name", "title", "description", "inputSchema", "outputSchema")}
        digest = hashlib.sha256(canonical(definition).encode("utf-8")).hexdigest()
        changed = self.pins.changed(name, digest)
        if changed:
            log.warning(
                "MCP server %r changed tool %r since it was first listed", self.checks.caller.server, name
            )
        description = str(tool.get("description") or "")
        ruling = self.checks.rule(
            Stage.TOOL_RESULT,
            [description, canonical(tool.get("inputSchema", {}))],
            f"tool {name!r} (as listed)",
            tool=(name, {}),
            metadata={"mcp_method": "tools/list", "mcp_tool_changed": "true" if changed else "false"},
        )
        if not ruling.allowed or ruling.texts[1] != canonical(tool.get("inputSchema", {})):
            self.hidden[name] = ruling.message or f"{_redacted_by(ruling)}: tool {name!r} is hidden"
            return None
        self.hidden.pop(name, None)
        return tool if ruling.texts[0] == description else tool | {"description": ruling.texts[0]}

    def _read(self, asked: Asked, message: m.Message) -> m.Message:
        value, request_id = message["result"], message["id"]
        if (problem := _invalid(ReadResourceResult, value)) is not None:
            return m.error(request_id, m.BLOCKED, f"Palisade refused resource {asked.uri!r}: {problem}")
        contents = value.get("contents", [])
        texts = [str(c["text"]) for c in contents if "text" in c]
        ruling = self._retrieved(texts, f"resource {asked.uri!r}", "resources/read", asked.uri)
        if not ruling.allowed:
            return m.error(request_id, m.BLOCKED, ruling.message or _redacted_by(ruling))
        pieces = iter(ruling.texts)
        rewritten = [c | {"text": next(pieces)} if "text" in c else c for c in contents]
        return m.result(request_id, value | {"contents": rewritten})

    def _prompt(self, asked: Asked, message: m.Message) -> m.Message:
        value, request_id = message["result"], message["id"]
        if (problem := _invalid(GetPromptResult, value)) is not None:
            return m.error(request_id, m.BLOCKED, f"Palisade refused the prompt: {problem}")
        contents = [msg.get("content", {}) for msg in value.get("messages", [])]
        texts = _content_texts(contents)
        ruling = self._retrieved(texts, "the prompt", "prompts/get", "")
        if not ruling.allowed:
            return m.error(request_id, m.BLOCKED, ruling.message or _redacted_by(ruling))
        rewritten = _with_texts(contents, list(ruling.texts))
        messages = [msg | {"content": c} for msg, c in zip(value.get("messages", []), rewritten, strict=True)]
        return m.result(request_id, value | {"messages": messages})

    def _retrieved(self, texts: list[str], what: str, method: str, uri: str) -> Ruling:
        metadata = {"mcp_method": method} | ({"mcp_uri": uri} if uri else {})
        ruling = self.checks.rule(Stage.RETRIEVAL, texts, what, metadata=metadata)
        if ruling.reply is not None:  # a canned reply has no place in a resource: refuse
            return Ruling(False, ruling.checked, message=f"Palisade withheld {what}: {ruling.reply}")
        return ruling


def _content_texts(blocks: list[Any]) -> list[str]:
    """The texts of content blocks: text blocks and embedded text resources, in order."""
    texts = []
    for block in blocks:
        text = _text_of(block)
        if text is not None:
            texts.append(text)
    return texts


def _text_of(block: Any) -> str | None:
    if not isinstance(block, dict):
        return None
    if block.get("type") == "text":
        return str(block.get("text", ""))
    resource = block.get("resource")
    if block.get("type") == "resource" and isinstance(resource, dict) and "text" in resource:
        return str(resource["text"])
    return None


def _with_texts(blocks: list[Any], texts: list[str]) -> list[Any]:
    """``blocks`` with their texts (as _content_texts reads them) replaced by ``texts``, in order."""
    pieces = iter(texts)
    out = []
    for block in blocks:
        if _text_of(block) is None:
            out.append(block)
        elif block.get("type") == "text":
            out.append(block | {"text": next(pieces)})
        else:
            out.append(block | {"resource": block["resource"] | {"text": next(pieces)}})
    return out


def _json_object(text: str) -> dict[str, Any] | None:
    """``text`` as a JSON object, or None (a redaction that ran across JSON's quotes breaks it)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _invalid(model: type[BaseModel], value: Any) -> str | None:
    """What is wrong with ``value`` as the SDK's ``model`` (None: nothing)."""
    try:
        model.model_validate(value, by_name=False)
    except ValidationError as exc:
        return f"malformed answer from the MCP server ({_problem(exc)})"
    return None


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or 'params'}: {first['msg']}"


def _redacted_by(ruling: Ruling) -> str:
    checked = ruling.checked
    return f"Palisade redacted this (decision {checked.decision_id})" if checked else "Palisade redacted this"
