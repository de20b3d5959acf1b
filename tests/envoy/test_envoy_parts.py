"""The pieces on their own: SSE reassembly, redactions put back, the ruleset chosen, trailers."""

from __future__ import annotations

import json
import tomllib

import pytest
import yaml  # type: ignore[import-untyped]
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from benchmarks.envoy_bench import EXAMPLE
from engine.config import Limits
from engine.envoy import wire
from engine.envoy.checks import Caller, Checks
from engine.envoy.config import EnvoyConfig
from engine.envoy.openai import BodyError, parse_request, split_redacted
from engine.envoy.processor import Exchange
from engine.envoy.responses import ResponsesStream
from engine.envoy.sse import Reassembler, StreamError, event
from engine.envoy.stream import ChatStream, StreamGuard
from engine.guard import Guard

EVENTS = b'data: {"a": 1}\n\n: keep-alive\n\ndata: {"b":\ndata: 2}\r\n\r\ndata: [DONE]\n\n'


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(EVENTS)])
def test_events_split_anywhere_are_reassembled(size: int) -> None:
    events = Reassembler(1024)
    found = [e for i in range(0, len(EVENTS), size) for e in events.feed(EVENTS[i : i + size])]
    assert [e.data for e in found] == ['{"a": 1}', "", '{"b":\n2}', "[DONE]"]
    assert found[-1].done and not events.finish()


def test_an_event_without_its_blank_line_ends_the_body() -> None:
    events = Reassembler(1024)
    assert events.feed(b'data: {"a": 1}') == []
    assert [e.data for e in events.finish()] == ['{"a": 1}']


def test_an_event_over_the_limit_is_refused() -> None:
    with pytest.raises(StreamError):
        Reassembler(16).feed(b"data: " + b"x" * 32)


@pytest.mark.parametrize(
    ("texts", "redacted", "expected"),
    [
        (["a b@c.de", "x"], "a <E>\nx", ["a <E>", "x"]),
        (
            ["one\ntwo b@c.de", "three", "f@g.hi four"],
            "one\ntwo <E>\nthree\n<E> four",
            ["one\ntwo <E>", "three", "<E> four"],
        ),
        (["key -----BEGIN", "END----- tail"], "key <K> tail", ["key <K> tail", ""]),  # a span over two texts
        (["same\nsame", "same"], "same\n<E>\nsame", ["same\n<E>", "same"]),
    ],
)
def test_redactions_go_back_to_their_texts(texts: list[str], redacted: str, expected: list[str]) -> None:
    assert split_redacted(texts, redacted) == expected


@pytest.mark.parametrize(
    "body",
    [
        b'{"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 1}}]}]}',
        b'{"messages": [{"role": "user", "content": 3}]}',
        b'{"messages": [{"role": "user", "content": "hi"}], "stream": true, "n": 2}',
    ],
)
def test_bodies_palisade_cannot_check_are_errors(body: bytes) -> None:
    with pytest.raises(BodyError):
        parse_request(body, ("user",))


def test_trailers_go_on_as_they_are(guard: Guard) -> None:
    exchange = Exchange(guard, EnvoyConfig(ruleset="gateway"), Limits())
    for part in ("request_trailers", "response_trailers"):
        answer = exchange.answer(ep.ProcessingRequest(**{part: ep.HttpTrailers()}))
        assert answer.WhichOneof("response") == part


def _exchange_status(
    config: EnvoyConfig, guard: Guard, headers: dict[str, str], route: str, skip_headers: bool
) -> int:
    """The status Palisade answers a chat about the forbidden topic with (200: it let it through),
    given its headers in a headers message, or (``skip_headers``) as the body's attributes."""
    names = {":method": "POST", ":path": "/v1/chat/completions"} | headers
    body = b'{"model": "m", "messages": [{"role": "user", "content": "the forbidden topic"}]}'
    messages = [ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True))]
    if skip_headers:
        attributes = {_ATTRIBUTES.get(k, f'request.headers["{k}"]'): v for k, v in names.items()}
        messages[0].attributes[wire.FILTER].update(attributes | {"xds.route_name": route})
    else:
        values = [base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in names.items()]
        headers_message = ep.HttpHeaders(headers=base_pb2.HeaderMap(headers=values))
        first = ep.ProcessingRequest(request_headers=headers_message)
        first.attributes[wire.FILTER].update({"xds.route_name": route})
        messages.insert(0, first)
    exchange = Exchange(guard, config, Limits())
    for message in messages:
        answer = exchange.answer(message)
        if answer.HasField("immediate_response"):
            return int(answer.immediate_response.status.code)
    return 200


_ATTRIBUTES = {":method": "request.method", ":path": "request.path"}


@pytest.mark.parametrize("skip_headers", [False, True])
def test_the_ruleset_comes_from_the_header_then_the_route_then_the_default(
    guard: Guard, skip_headers: bool
) -> None:
    by_route = EnvoyConfig(ruleset="absent", routes={"chat": "gateway"}, ruleset_header="x-ruleset")

    def status(headers: dict[str, str], route: str) -> int:
        return _exchange_status(by_route, guard, headers, route, skip_headers)

    assert status({}, "chat") == 403  # the route's ruleset blocks it
    assert status({}, "other") == 500  # the default, which is not served
    assert status({"x-ruleset": "absent"}, "chat") == 500  # the header wins
    assert status({"x-ruleset": "gateway"}, "other") == 403
    assert _exchange_status(by_route, guard, {":method": "PUT"}, "chat", skip_headers) == 403  # not guarded


def test_the_example_envoy_config_sends_what_the_example_palisade_reads() -> None:
    """examples/envoy: the filter's request_attributes carry every header palisade.toml names, for the
    route that skips the request headers message."""
    envoy = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    manager = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    processor = next(f for f in manager["http_filters"] if f["name"] == wire.FILTER)["typed_config"]
    palisade = tomllib.loads((EXAMPLE.parent / "palisade.toml").read_text(encoding="utf-8"))["envoy"]
    assert set(EnvoyConfig(**palisade).request_attributes()) <= set(processor["request_attributes"])


def test_other_paths_pass_unchecked_only_when_allowed(guard: Guard) -> None:
    values = [
        base_pb2.HeaderValue(key=k, raw_value=v) for k, v in ((":method", b"GET"), (":path", b"/v1/models"))
    ]
    first = ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=base_pb2.HeaderMap(headers=values)))
    allowed = Exchange(guard, EnvoyConfig(ruleset="gateway", other_paths="allow"), Limits()).answer(first)
    assert allowed.WhichOneof("response") == "request_headers"
    assert allowed.mode_override.request_body_mode == allowed.mode_override.NONE
    assert allowed.mode_override.response_header_mode == allowed.mode_override.SKIP
    refused = Exchange(guard, EnvoyConfig(ruleset="gateway"), Limits()).answer(first)
    assert refused.immediate_response.status.code == 403


def _text_event(text: str) -> bytes:
    return event({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def test_the_first_text_of_a_stream_leaves_once_the_window_follows_it(guard: Guard) -> None:
    """Not once twice the window waits: the first text a client sees waits for ``hold`` characters."""
    stream = StreamGuard(Checks(guard, Limits(), Caller("gateway")), 8, 4096, lambda found: b"", ChatStream())
    assert stream.feed(_text_event("Hello"), False) == b""
    assert stream.feed(_text_event(" there,"), False) == b""  # 7 characters after it: held
    assert stream.feed(_text_event("wo"), False) == _text_event("Hello")  # 9: it leaves
    assert stream.feed(_text_event("rld"), False) == b""  # then a Check once 16 wait
    rest = stream.feed(b"data: [DONE]\n\n", True)
    assert rest == b"".join(_text_event(t) for t in (" there,", "wo", "rld")) + b"data: [DONE]\n\n"


def test_a_match_across_the_first_window_is_caught(guard: Guard) -> None:
    stopped = b"data: stopped\n\n"
    stream = StreamGuard(
        Checks(guard, Limits(), Caller("gateway")), 16, 4096, lambda found: stopped, ChatStream()
    )
    sent = stream.feed(_text_event("Here: LAUNCH"), False) + stream.feed(_text_event("-CODE-"), False)
    sent += stream.feed(_text_event("42 and the rest of it"), False)
    assert b"LAUNCH" not in sent and sent.endswith(stopped + b"data: [DONE]\n\n")


def test_a_responses_function_call_is_checked_on_its_complete_item(guard: Guard) -> None:
    """Arguments that come only with the item's ``response.output_item.done`` (no deltas) are checked."""
    stream = StreamGuard(
        Checks(guard, Limits(), Caller("gateway")), 8, 4096, lambda found: b"stopped", ResponsesStream()
    )
    begun = {"type": "function_call", "name": "shell", "call_id": "c"}  # no arguments yet
    done = begun | {"arguments": json.dumps({"command": "rm -rf /"})}
    added = event({"type": "response.output_item.added", "output_index": 0, "item": begun})
    assert stream.feed(added, False) == b""  # held with its call
    finished = event({"type": "response.output_item.done", "output_index": 0, "item": done})
    assert stream.feed(finished, False) == b"stopped" and stream.stopped  # no [DONE] in this API
