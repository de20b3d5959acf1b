"""The typed request a policy sees: stage, messages or text, tool call, principal, metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from dsl.types import Stage

_FORBID = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class Message:
    __pydantic_config__ = _FORBID

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    __pydantic_config__ = _FORBID

    name: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    server: str = ""


@dataclass(frozen=True, slots=True)
class Principal:
    __pydantic_config__ = _FORBID

    id: str = ""
    tenant: str = ""
    roles: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Request:
    """What one Check asks about. ``content`` is ``text`` if given, else the messages joined."""

    __pydantic_config__ = _FORBID

    stage: Stage
    messages: tuple[Message, ...] = ()
    text: str = ""
    tool: ToolCall | None = None
    principal: Principal = field(default_factory=Principal)
    metadata: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""
    approval_id: str = ""

    @property
    def content(self) -> str:
        if self.text:
            return self.text
        return "\n".join(m.content for m in self.messages)

    @property
    def tool_args_text(self) -> str:
        """The tool arguments as canonical JSON (sorted keys), for detectors that scan them."""
        if self.tool is None:
            return ""
        return json.dumps(self.tool.arguments, sort_keys=True, ensure_ascii=False)


QUOTE_CHARS = 64  # how much of a caller's string an error message quotes


def quoted(value: str, limit: int = QUOTE_CHARS) -> str:
    """A caller's string as an error message may quote it: its repr, cut to ``limit`` characters
    (with the full length said), so that no caller can make an error, a status or a log line long."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


class RequestError(ValueError):
    """A request given as data (a policy test, the CLI) is malformed; the message names the field."""


_ADAPTER: TypeAdapter[Request] = TypeAdapter(Request)


def request_from_dict(data: Mapping[str, Any]) -> Request:
    """Build a Request from plain data, naming the offending field on error."""
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}" for err in exc.errors()
        )
        raise RequestError(problems) from None
