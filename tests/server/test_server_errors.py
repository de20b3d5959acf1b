"""Bad calls get a clear status naming what is wrong, and never take the server down."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from server_helpers import config, running

from dsl.types import Outcome
from engine.client.guard_client import GuardClient, GuardError
from engine.protocol.wire import APPROVALS_SERVICE, CHECK_METHOD, apb, pb, pb_grpc

SLOW_TEXT = "123456789" + "a" * 40 + "!"  # every slow_test detector backtracks on it until the regex timeout


def refused(client: GuardClient, **fields: Any) -> GuardError:
    with pytest.raises(GuardError) as info:
        client.check(**{"ruleset": "server_test", "version": "1.0.0"} | fields)
    return info.value


def raw_error(channel: grpc.Channel, request: pb.CheckRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        pb_grpc.GuardStub(channel).Check(request, timeout=10)
    return info.value


def test_an_unknown_ruleset_is_not_found(client: GuardClient) -> None:
    error = refused(client, ruleset="no_such_ruleset", version="", text="hi")
    assert error.code is grpc.StatusCode.NOT_FOUND
    assert "no_such_ruleset" in error.details and "server_test@1.0.0" in error.details


@pytest.mark.parametrize("field", ["ruleset", "version"])
def test_a_long_unknown_name_is_quoted_cut_short(client: GuardClient, field: str) -> None:
    error = refused(client, **{field: "x" * 20_000, "text": "hi"})
    assert error.code is grpc.StatusCode.NOT_FOUND
    assert f"{'x' * 64}'... (20000 characters)" in error.details and len(error.details) < 400


def test_an_unknown_version_is_not_found(client: GuardClient) -> None:
    error = refused(client, version="9.9.9", text="hi")
    assert error.code is grpc.StatusCode.NOT_FOUND
    assert "9.9.9" in error.details


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"stage": pb.STAGE_INPUT, "text": "hi"}, "ruleset: required"),
        ({"ruleset": "server_test", "text": "hi"}, "stage: required"),
        ({"ruleset": "server_test", "stage": 42, "text": "hi"}, "stage: required"),
        ({"ruleset": "server_test", "stage": pb.STAGE_INPUT}, "text or messages: required"),
        ({"ruleset": "server_test", "stage": pb.STAGE_TOOL_CALL}, "tool.name: required"),
        (
            {"ruleset": "server_test", "stage": pb.STAGE_INPUT, "messages": [pb.Message(content="x")]},
            "messages[0].role: required",
        ),
    ],
)
def test_missing_or_invalid_fields_are_invalid_argument_naming_the_field(
    channel: grpc.Channel, request_fields: dict[str, Any], field: str
) -> None:
    error = raw_error(channel, pb.CheckRequest(**request_fields))
    assert isinstance(error, grpc.Call)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in (error.details() or "")


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"inner": value}
    return value


@pytest.mark.parametrize(
    ("fields", "limit"),
    [
        ({"text": "x" * 10_001}, "max_text_chars"),
        ({"messages": [{"role": "user", "content": "x" * 6_000}] * 2}, "max_text_chars"),
        ({"messages": [{"role": "user", "content": "hi"}] * 6}, "max_messages"),
        ({"stage": "tool_call", "tool": {"name": "t", "arguments": nested(5)}}, "max_argument_depth"),
        ({"stage": "tool_call", "tool": {"name": "t", "arguments": {"a": [[[[1]]]]}}}, "max_argument_depth"),
    ],
)
def test_requests_over_a_limit_are_invalid_argument_naming_the_limit(
    client: GuardClient, fields: dict[str, Any], limit: str
) -> None:
    error = refused(client, **fields)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert limit in error.details


def test_arguments_at_the_depth_limit_are_accepted(client: GuardClient) -> None:
    result = client.check(
        ruleset="server_test", stage="tool_call", tool={"name": "t", "arguments": nested(4)}
    )
    assert result.outcome is Outcome.ALLOW


def test_a_request_over_the_byte_limit_is_resource_exhausted(client: GuardClient) -> None:
    error = refused(client, text="x" * 70_000)
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED


def raw_call(channel: grpc.Channel, method: str, payload: bytes, *, streaming: bool = False) -> grpc.Call:
    """Send ``payload`` as the request, bytes as they are, and return the refusal."""
    with pytest.raises(grpc.RpcError) as info:
        if streaming:
            list(channel.unary_stream(method)(payload, timeout=10))
        else:
            channel.unary_unary(method)(payload, timeout=10)
    assert isinstance(info.value, grpc.Call)
    return info.value


def too_deep_for_protobuf() -> bytes:
    """A CheckRequest whose tool arguments nest past protobuf's parse limit (another client might send it)."""
    message = pb.CheckRequest(ruleset="server_test", stage=pb.STAGE_TOOL_CALL)
    message.tool.name = "t"
    message.tool.arguments.update(nested(40))
    return message.SerializeToString()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xff\xff", "Wire format was corrupt"),
        (b"\x0a\x02\xff\xfe", "bad UTF-8"),  # field 1 (ruleset), a string that is not UTF-8
        (too_deep_for_protobuf(), "MaxDepth"),
    ],
)
def test_bytes_that_are_no_check_request_are_invalid_argument_and_leave_no_traceback(
    channel: grpc.Channel, client: GuardClient, caplog: pytest.LogCaptureFixture, payload: bytes, reason: str
) -> None:
    error = raw_call(channel, CHECK_METHOD, payload)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert details.startswith("request: not a valid palisade.v1.CheckRequest: ") and reason in details
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert client.check(ruleset="server_test", text="still here").outcome is Outcome.ALLOW


@pytest.mark.parametrize(
    ("method", "streaming"),
    [("Get", False), ("List", False), ("Resolve", False), ("Cancel", False), ("Watch", True)],
)
def test_bytes_that_are_no_approvals_request_are_invalid_argument_and_leave_no_traceback(
    channel: grpc.Channel, client: GuardClient, caplog: pytest.LogCaptureFixture, method: str, streaming: bool
) -> None:
    request_type = apb.DESCRIPTOR.services_by_name["Approvals"].methods_by_name[method].input_type
    error = raw_call(channel, f"/{APPROVALS_SERVICE}/{method}", b"\xff\xff\xff", streaming=streaming)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(f"request: not a valid {request_type.full_name}: ")
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert client.list_approvals(queue="nobody") == []


def test_bad_requests_leave_the_server_serving(client: GuardClient) -> None:
    for _ in range(3):
        refused(client, ruleset="")
        refused(client, text="x" * 70_000)
    assert client.check(ruleset="server_test", text="still here").outcome is Outcome.ALLOW


@pytest.fixture(scope="module")
def slow_client() -> Iterator[GuardClient]:
    """Each slow_test detector takes the regex timeout (200 ms); 1 s of every deadline is kept back."""
    cfg = config(regex_timeout_ms=200, deadline_margin_ms=1000)
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}") as guard:
        yield guard


def test_a_deadline_that_passes_during_evaluation_gets_the_error_policy(slow_client: GuardClient) -> None:
    result = slow_client.check(ruleset="slow_test", text=SLOW_TEXT, timeout=2.0)
    assert result.outcome is Outcome.BLOCK
    assert result.deciding_rules == ("guarded",)
    assert all(m.from_error for m in result.matches)
    codes = {e.rule: e.code for e in result.errors}
    assert codes["guarded"] == "deadline_exceeded"
    assert "regex" not in codes["guarded"]


def test_with_time_enough_every_detector_runs_to_its_own_timeout(slow_client: GuardClient) -> None:
    result = slow_client.check(ruleset="slow_test", text=SLOW_TEXT, timeout=30.0)
    codes = {e.code for e in result.errors}
    assert result.outcome is Outcome.BLOCK and codes == {"detector_error"}
    assert len(result.errors) == 9


def test_overload_is_shed_with_resource_exhausted() -> None:
    cfg = config(regex_timeout_ms=100, max_concurrent_rpcs=2, threads=4)
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}", timeout=30) as guard:

        def call(_: int) -> grpc.StatusCode:
            try:
                guard.check(ruleset="slow_test", text=SLOW_TEXT)
            except GuardError as exc:
                return exc.code
            return grpc.StatusCode.OK

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(call, range(8)))
        assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert guard.check(ruleset="server_test", text="after the storm").outcome is Outcome.ALLOW


def test_a_call_without_deadline_gets_the_configured_default_timeout() -> None:
    cfg = config(regex_timeout_ms=100, default_timeout_ms=250)
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}", timeout=None) as guard:
        result = guard.check(ruleset="slow_test", text=SLOW_TEXT)
    assert result.outcome is Outcome.BLOCK
    assert {e.rule: e.code for e in result.errors}["guarded"] == "deadline_exceeded"
