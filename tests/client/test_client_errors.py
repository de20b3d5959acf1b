"""What the client cannot send it refuses before sending, with a GuardError naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from engine.client.guard_client import GuardClient, GuardError, InvalidArgument

SURROGATE = "\ud800"
CHECK = {"ruleset": "server_test", "version": "1.0.0", "text": "hi"}
TOOL_CALL = {"stage": "tool_call", "text": ""}
LIMIT = "tool.arguments: nested deeper than protobuf allows (100)"


def refused(client: GuardClient, **fields: Any) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        client.check(**CHECK | fields)
    assert isinstance(info.value, GuardError) and info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    return info.value


def tool(arguments: Any, name: str = "t", server: str = "") -> dict[str, Any]:
    return TOOL_CALL | {"tool": {"name": name, "server": server, "arguments": arguments}}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ruleset": SURROGATE}, "ruleset"),
        ({"version": SURROGATE}, "version"),
        ({"text": SURROGATE}, "text"),
        ({"messages": [{"role": "user", "content": SURROGATE}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": SURROGATE, "content": "b"}]},
            "messages[1].role",
        ),
        (tool({}, name=SURROGATE), "tool.name"),
        (tool({}, server=SURROGATE), "tool.server"),
        (tool({SURROGATE: 1}), "tool.arguments key '\\ud800'"),
        (tool({"a": [1, {"b": SURROGATE}]}), "tool.arguments.a[1].b"),
        ({"principal": {"id": SURROGATE}}, "principal.id"),
        ({"principal": {"tenant": SURROGATE}}, "principal.tenant"),
        ({"principal": {"roles": ["r", SURROGATE]}}, "principal.roles[1]"),
        ({"principal": {"attributes": {SURROGATE: "v"}}}, "principal.attributes key '\\ud800'"),
        ({"principal": {"attributes": {"k": SURROGATE}}}, "principal.attributes.k"),
        ({"metadata": {SURROGATE: "v"}}, "metadata key '\\ud800'"),
        ({"metadata": {"k": SURROGATE}}, "metadata.k"),
        ({"request_id": SURROGATE}, "request_id"),
        ({"approval_id": SURROGATE}, "approval_id"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field(
    client: GuardClient, fields: dict[str, Any], field: str
) -> None:
    error = refused(client, **fields)
    assert error.details == f"{field}: contains a lone surrogate at index 0 (not encodable as UTF-8)"


def test_the_index_of_a_lone_surrogate_is_named(client: GuardClient) -> None:
    error = refused(client, text="fine, then \udfff")
    assert error.details == "text: contains a lone surrogate at index 11 (not encodable as UTF-8)"


def objects(depth: int) -> dict[str, Any]:
    """Arguments that are ``depth`` objects deep: {"in": {"in": ... {"leaf": 1}}}."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"in": value}
    return value


def arrays(depth: int) -> dict[str, Any]:
    """Arguments holding an array ``depth`` arrays deep: {"a": [[... [1] ...]]}."""
    value: list[Any] = [1]
    for _ in range(depth - 1):
        value = [value]
    return {"a": value}


def cycle() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["again"] = [loop]
    return loop


@pytest.mark.parametrize("arguments", [objects(34), arrays(49), objects(5000), arrays(5000), cycle()])
def test_arguments_nested_past_protobufs_limit_are_refused(client: GuardClient, arguments: Any) -> None:
    assert refused(client, **tool(arguments)).details == LIMIT


@pytest.mark.parametrize("arguments", [objects(33), arrays(48)])
def test_the_deepest_arguments_protobuf_carries_reach_the_server(client: GuardClient, arguments: Any) -> None:
    """The server parses them and refuses them by its own, lower, limit."""
    with pytest.raises(GuardError) as info:
        client.check(**CHECK | tool(arguments))
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "max_argument_depth" in info.value.details


@pytest.mark.parametrize(
    ("arguments", "details"),
    [
        ({"a": b"x"}, "tool.arguments.a: a bytes is not a JSON value"),
        ({"a": [1, {2, 3}]}, "tool.arguments.a[1]: a set is not a JSON value"),
        ({"a": {"b": 10**400}}, "tool.arguments.a.b: an integer too large for a JSON number (a double)"),
    ],
)
def test_arguments_that_are_not_json_are_refused(client: GuardClient, arguments: Any, details: str) -> None:
    assert refused(client, **tool(arguments)).details == details


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"stage": "bogus"}, "stage: "), ({"messages": [{"role": "user"}]}, "messages.0.content: ")],
)
def test_malformed_fields_are_refused_naming_the_field(
    client: GuardClient, fields: dict[str, Any], field: str
) -> None:
    assert refused(client, **fields).details.startswith(field)


@pytest.mark.parametrize(
    ("call", "details"),
    [
        (lambda c: c.get_approval(SURROGATE), "approval_id: contains a lone surrogate"),
        (lambda c: c.list_approvals(queue=SURROGATE), "queue: contains a lone surrogate"),
        (lambda c: c.list_approvals(state="bogus"), "state: 'bogus' is not one of pending, approved"),
        (lambda c: c.list_approvals(limit=2**31), "limit: 2147483648 is out of range"),
        (lambda c: c.resolve_approval("x", approve=True, approver=SURROGATE), "approver: contains a lone"),
        (
            lambda c: c.resolve_approval("x", approve=False, approver="a", comment=SURROGATE),
            "comment: contains",
        ),
        (lambda c: c.resolve_approval("x", approve=True, token="a\nb"), "token: must be printable ASCII"),
        (lambda c: c.resolve_approval("x", approve=True, token=SURROGATE), "token: must be printable ASCII"),
        (lambda c: c.cancel_approval("x", actor=SURROGATE), "actor: contains a lone surrogate"),
        (lambda c: list(c.watch_approvals(queue=SURROGATE, timeout=5)), "queue: contains a lone surrogate"),
    ],
)
def test_approvals_calls_refuse_what_they_cannot_send_naming_the_field(
    client: GuardClient, call: Callable[[GuardClient], object], details: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        call(client)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details.startswith(details)
