"""CheckRequest <-> engine.runtime.request.Request; the service's limits are enforced on the way in."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from google.protobuf import struct_pb2

from dsl.types import Stage
from engine.config import Limits
from engine.protocol.wire import pb
from engine.runtime.request import Message, Principal, Request, ToolCall

STAGES: dict[pb.Stage.ValueType, Stage] = {
    pb.STAGE_INPUT: Stage.INPUT,
    pb.STAGE_OUTPUT: Stage.OUTPUT,
    pb.STAGE_TOOL_CALL: Stage.TOOL_CALL,
    pb.STAGE_TOOL_RESULT: Stage.TOOL_RESULT,
    pb.STAGE_RETRIEVAL: Stage.RETRIEVAL,
}
STAGE_VALUES: dict[Stage, pb.Stage.ValueType] = {stage: value for value, stage in STAGES.items()}
_CONTENT_STAGES = frozenset({Stage.INPUT, Stage.OUTPUT, Stage.TOOL_RESULT, Stage.RETRIEVAL})
_MAX_EXACT_INT = 2**53
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NO_RULESET = "ruleset: required (the name a ruleset declares)"
# protobuf's parsers refuse messages nested deeper than this (a CheckRequest is level 0, its tool 1)
_PROTOBUF_DEPTH = 100


class InvalidRequest(ValueError):
    """A CheckRequest that cannot be decided; the message names the field or the limit."""


def request_from_proto(msg: pb.CheckRequest, limits: Limits) -> Request:
    """Validate ``msg`` against ``limits`` and build the domain request."""
    if not msg.ruleset:
        raise InvalidRequest(_NO_RULESET)
    stage = _stage(msg.stage)
    messages = _messages(msg.messages, limits)
    _check_length("text", len(msg.text), limits)
    tool = _tool(msg.tool, limits) if msg.HasField("tool") else None
    _check_required(stage, bool(msg.text or msg.messages), tool)
    return Request(
        stage=stage,
        messages=messages,
        text=msg.text,
        tool=tool,
        principal=_principal(msg.principal) if msg.HasField("principal") else Principal(),
        metadata=dict(msg.metadata),
        request_id=msg.request_id,
        approval_id=msg.approval_id,
    )


def bounded(ruleset: str, request: Request, limits: Limits) -> Request:
    """``request`` as the service takes it from an in-process front door: what
    ``request_from_proto(request_to_proto(ruleset, request), limits)`` gives, with the same checks
    and errors, but without the protobuf round trip unless ``request`` carries a tool (whose
    arguments then come back as a gRPC caller's would: whole numbers as ints)."""
    if request.tool is not None:
        return request_from_proto(request_to_proto(ruleset, request), limits)
    for field, value in _strings(ruleset, "", request):
        check_text(field, value)
    if not ruleset:
        raise InvalidRequest(_NO_RULESET)
    _limit_messages(request.messages, limits)
    _check_length("text", len(request.text), limits)
    _check_required(request.stage, bool(request.text or request.messages), None)
    return request


def _stage(value: pb.Stage.ValueType) -> Stage:
    stage = STAGES.get(value)
    if stage is None:
        names = ", ".join(pb.Stage.Name(v) for v in STAGES)
        given = "STAGE_UNSPECIFIED" if value == pb.STAGE_UNSPECIFIED else f"unknown value {value}"
        raise InvalidRequest(f"stage: required, one of {names} (got {given})")
    return stage


def _messages(items: Iterable[pb.Message], limits: Limits) -> tuple[Message, ...]:
    messages = tuple(Message(m.role, m.content) for m in items)
    _limit_messages(messages, limits)
    return messages


def _limit_messages(messages: tuple[Message, ...], limits: Limits) -> None:
    if len(messages) > limits.max_messages:
        raise InvalidRequest(
            f"messages: {len(messages)} messages is over the limit max_messages ({limits.max_messages})"
        )
    for i, message in enumerate(messages):
        if not message.role:
            raise InvalidRequest(f"messages[{i}].role: required")
    _check_length("messages", sum(len(m.content) for m in messages), limits)


def _check_length(field: str, chars: int, limits: Limits) -> None:
    if chars > limits.max_text_chars:
        raise InvalidRequest(
            f"{field}: {chars} characters is over the limit max_text_chars ({limits.max_text_chars})"
        )


def _check_required(stage: Stage, has_content: bool, tool: ToolCall | None) -> None:
    if stage in _CONTENT_STAGES and not has_content:
        raise InvalidRequest(f"text or messages: required at stage {stage.value}")
    if stage is Stage.TOOL_CALL and (tool is None or not tool.name):
        raise InvalidRequest("tool.name: required at stage tool_call")


def _tool(msg: pb.ToolCall, limits: Limits) -> ToolCall:
    arguments = _struct(msg.arguments, 1, limits.max_argument_depth) if msg.HasField("arguments") else {}
    return ToolCall(name=msg.name, arguments=arguments, server=msg.server)


def _principal(msg: pb.Principal) -> Principal:
    return Principal(id=msg.id, tenant=msg.tenant, roles=tuple(msg.roles), attributes=dict(msg.attributes))


def _struct(msg: struct_pb2.Struct, depth: int, limit: int) -> dict[str, Any]:
    _check_depth(depth, limit)
    return {key: _value(value, depth, limit) for key, value in msg.fields.items()}


def _check_depth(depth: int, limit: int) -> None:
    if depth > limit:
        raise InvalidRequest(f"tool.arguments: nested deeper than the limit max_argument_depth ({limit})")


def _value(msg: struct_pb2.Value, depth: int, limit: int) -> Any:
    """A JSON value; whole numbers become ints, as they were in the caller's JSON."""
    kind = msg.WhichOneof("kind")
    if kind == "string_value":
        return msg.string_value
    if kind == "number_value":
        number = msg.number_value
        return int(number) if number.is_integer() and abs(number) <= _MAX_EXACT_INT else number
    if kind == "bool_value":
        return msg.bool_value
    if kind == "struct_value":
        return _struct(msg.struct_value, depth + 1, limit)
    if kind == "list_value":
        _check_depth(depth + 1, limit)
        return [_value(item, depth + 1, limit) for item in msg.list_value.values]
    return None


def request_to_proto(ruleset: str, request: Request, version: str = "") -> pb.CheckRequest:
    """The CheckRequest that asks ``ruleset`` (at ``version``, if pinned) about ``request``; raises
    InvalidRequest, naming the field, for what protobuf cannot carry."""
    for field, value in _strings(ruleset, version, request):
        check_text(field, value)
    if request.tool is not None:
        _check_argument("tool.arguments", request.tool.arguments, 1)  # its Struct is level 2
    p = request.principal
    principal = pb.Principal(id=p.id, tenant=p.tenant, roles=list(p.roles), attributes=dict(p.attributes))
    return pb.CheckRequest(
        ruleset=ruleset,
        version=version,
        stage=STAGE_VALUES[request.stage],
        messages=[pb.Message(role=m.role, content=m.content) for m in request.messages],
        text=request.text,
        tool=_tool_to_proto(request.tool) if request.tool is not None else None,
        principal=principal if p != Principal() else None,
        metadata=dict(request.metadata),
        request_id=request.request_id,
        approval_id=request.approval_id,
    )


def check_text(field: str, value: object) -> None:
    """Raise InvalidRequest unless ``value`` is a string protobuf can encode (UTF-8: no lone surrogate)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: expected a string, got {type(value).__name__}")
    found = _SURROGATE.search(value)
    if found is not None:
        raise InvalidRequest(
            f"{field}: contains a lone surrogate at index {found.start()} (not encodable as UTF-8)"
        )


def _strings(ruleset: str, version: str, request: Request) -> Iterator[tuple[str, object]]:
    """Each string field of the CheckRequest for ``request``, with its name (tool arguments aside)."""
    yield from (("ruleset", ruleset), ("version", version), ("text", request.text))
    yield from (("request_id", request.request_id), ("approval_id", request.approval_id))
    for i, message in enumerate(request.messages):
        yield from ((f"messages[{i}].role", message.role), (f"messages[{i}].content", message.content))
    if request.tool is not None:
        yield from (("tool.name", request.tool.name), ("tool.server", request.tool.server))
    p = request.principal
    yield from (("principal.id", p.id), ("principal.tenant", p.tenant))
    yield from ((f"principal.roles[{i}]", role) for i, role in enumerate(p.roles))
    yield from _entries("principal.attributes", p.attributes)
    yield from _entries("metadata", request.metadata)


def _entries(field: str, items: Mapping[Any, object]) -> Iterator[tuple[str, object]]:
    for key, value in items.items():
        yield f"{field} key {key!r}", key
        yield f"{field}.{key}", value


def _check_argument(field: str, value: object, level: int) -> None:
    """Raise InvalidRequest unless ``value`` is JSON that a protobuf Value ``level`` messages deep can
    carry: UTF-8 strings, numbers a double holds, and objects and arrays of these within protobuf's
    depth limit (an object adds three levels: its Struct, a map entry, a Value; an array two)."""
    if isinstance(value, Mapping):
        _check_level(level + 1)
        for key, item in value.items():
            check_text(f"{field} key {key!r}", str(key))
            _check_argument(f"{field}.{key}", item, level + 3)
    elif isinstance(value, list | tuple):
        _check_level(level + 1)
        for i, item in enumerate(value):
            _check_argument(f"{field}[{i}]", item, level + 2)
    else:
        _check_level(level)
        _check_scalar(field, value)


def _check_level(level: int) -> None:
    if level > _PROTOBUF_DEPTH:
        raise InvalidRequest(f"tool.arguments: nested deeper than protobuf allows ({_PROTOBUF_DEPTH})")


def _check_scalar(field: str, value: object) -> None:
    if isinstance(value, str):
        check_text(field, value)
    elif isinstance(value, int):  # bool too
        try:
            float(value)  # a protobuf Value holds numbers as doubles
        except OverflowError:
            raise InvalidRequest(f"{field}: an integer too large for a JSON number (a double)") from None
    elif value is not None and not isinstance(value, float):
        raise InvalidRequest(f"{field}: a {type(value).__name__} is not a JSON value")


def _tool_to_proto(tool: ToolCall) -> pb.ToolCall:
    msg = pb.ToolCall(name=tool.name, server=tool.server)
    msg.arguments.update(_plain(tool.arguments))
    return msg


def _plain(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Struct.update takes dicts and lists only; tuples (from frozen requests) become lists."""

    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    result: dict[str, Any] = convert(arguments)
    return result
