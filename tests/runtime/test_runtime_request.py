"""Requests as data: validation that names the field, content, and the canonical tool arguments."""

from __future__ import annotations

import pytest

from dsl.types import Stage
from engine.runtime.request import Message, Request, RequestError, request_from_dict


def test_a_full_request() -> None:
    request = request_from_dict(
        {
            "stage": "tool_call",
            "messages": [{"role": "user", "content": "hi"}],
            "tool": {
                "name": "shell.exec",
                "arguments": {"command": "ls", "n": [1, {"a": None}]},
                "server": "mcp",
            },
            "principal": {"id": "u1", "tenant": "acme", "roles": ["dev"], "attributes": {"team": "red"}},
            "metadata": {"region": "eu"},
            "request_id": "r-1",
        }
    )
    assert request.stage is Stage.TOOL_CALL
    assert request.messages == (Message("user", "hi"),)
    assert request.tool is not None and request.tool.name == "shell.exec" and request.tool.server == "mcp"
    assert request.tool.arguments == {"command": "ls", "n": [1, {"a": None}]}
    assert request.principal.roles == ("dev",)
    assert request.principal.attributes == {"team": "red"}
    assert request.metadata == {"region": "eu"}
    assert request.request_id == "r-1"


def test_content_is_text_or_the_joined_messages() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert request_from_dict({"stage": "input", "messages": messages}).content == "a\nb"
    assert request_from_dict({"stage": "input", "messages": messages, "text": "t"}).content == "t"
    assert request_from_dict({"stage": "input"}).content == ""


def test_tool_args_text_is_canonical_json() -> None:
    request = request_from_dict(
        {"stage": "tool_call", "tool": {"name": "x", "arguments": {"b": 1, "a": "é", "c": [True, None]}}}
    )
    assert request.tool_args_text == '{"a": "é", "b": 1, "c": [true, null]}'
    assert request_from_dict({"stage": "tool_call"}).tool_args_text == ""


def test_defaults() -> None:
    request = Request(stage=Stage.INPUT)
    assert request.tool is None
    assert request.principal.id == "" and request.principal.roles == ()
    assert request.metadata == {}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "stage"),
        ({"stage": "prompt"}, "stage"),
        ({"stage": "input", "colour": "red"}, "colour"),
        ({"stage": "input", "messages": [{"role": "user"}]}, "messages.0.content"),
        ({"stage": "input", "messages": [{"role": "user", "content": "x", "name": "n"}]}, "messages.0.name"),
        ({"stage": "input", "principal": {"roles": "admin"}}, "principal.roles"),
        ({"stage": "input", "metadata": {"k": 1}}, "metadata.k"),
        ({"stage": "tool_call", "tool": {"args": {}}}, "tool.args"),
    ],
)
def test_invalid_requests_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(RequestError) as info:
        request_from_dict(data)
    assert str(info.value).startswith(field) or f"; {field}" in str(info.value), str(info.value)
