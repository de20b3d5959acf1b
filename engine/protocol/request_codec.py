"""CheckRequest <-> engine.runtime.request.Request; the service's limits are enforced on the way in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


class InvalidRequest(ValueError):
    """A CheckRequest that cannot be decided; the message names the field or the limit."""


def request_from_proto(msg: pb.CheckRequest, limits: Limits) -> Request:
    """Validate ``msg`` against ``limits`` and build the domain request."""
    if not msg.ruleset:
        raise InvalidRequest("ruleset: required (the name a ruleset declares)")
    stage = _stage(msg.stage)
    messages = _messages(msg.messages, limits)
    _check_length("text", len(msg.text), limits)
    tool = _tool(msg.tool, limits) if msg.HasField("tool") else None
    _check_required(stage, msg, tool)
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


def _stage(value: pb.Stage.ValueType) -> Stage:
    stage = STAGES.get(value)
    if stage is None:
        names = ", ".join(pb.Stage.Name(v) for v in STAGES)
        given = "STAGE_UNSPECIFIED" if value == pb.STAGE_UNSPECIFIED else f"unknown value {value}"
        raise InvalidRequest(f"stage: required, one of {names} (got {given})")
    return stage


def _messages(items: Iterable[pb.Message], limits: Limits) -> tuple[Message, ...]:
    messages = tuple(Message(m.role, m.content) for m in items)
    if len(messages) > limits.max_messages:
        raise InvalidRequest(
            f"messages: {len(messages)} messages is over the limit max_messages ({limits.max_messages})"
        )
    for i, message in enumerate(messages):
        if not message.role:
            raise InvalidRequest(f"messages[{i}].role: required")
    _check_length("messages", sum(len(m.content) for m in messages), limits)
    return messages


def _check_length(field: str, chars: int, limits: Limits) -> None:
    if chars > limits.max_text_chars:
        raise InvalidRequest(
            f"{field}: {chars} characters is over the limit max_text_chars ({limits.max_text_chars})"
        )


def _check_required(stage: Stage, msg: pb.CheckRequest, tool: ToolCall | None) -> None:
    if stage in _CONTENT_STAGES and not msg.text and not msg.messages:
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
    """The CheckRequest that asks ``ruleset`` (at ``version``, if pinned) about ``request``."""
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
