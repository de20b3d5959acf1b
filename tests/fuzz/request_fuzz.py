"""Random CheckRequests (messages and bytes) and what the request decoder must answer."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any

from google.protobuf.message import DecodeError
from hypothesis import strategies as st

from engine.config import Limits
from engine.protocol.request_codec import InvalidRequest, request_from_proto, request_to_proto
from engine.protocol.wire import pb
from engine.runtime.request import Request

# An InvalidRequest starts with the field it is about.
FIELD = re.compile(
    r"(ruleset|stage|messages|messages\[\d+\]\.role|text|text or messages|tool\.name|tool\.arguments): "
)
INT32 = st.integers(-(2**31), 2**31 - 1)

texts = st.one_of(st.text(max_size=12), st.sampled_from(("", "user", "x" * 70, "\x00", "é\u202e")))
numbers = st.one_of(
    st.floats(), st.integers(-(2**60), 2**60).map(float), st.sampled_from((2.0**53, 2.0**53 + 2, -0.0))
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=16,
)


@st.composite
def nested(draw: st.DrawFn) -> dict[str, Any]:
    """Tool arguments nested 1 to 40 deep, in objects or lists: around the depth limit and past it."""
    value: Any = draw(scalars)
    for _ in range(draw(st.integers(1, 40))):
        value = [value] if draw(st.booleans()) else {draw(texts): value}
    return value if isinstance(value, dict) else {"a": value}


limits = st.one_of(
    st.just(Limits()),
    st.builds(
        Limits,
        max_text_chars=st.integers(1, 80),
        max_messages=st.integers(1, 4),
        max_argument_depth=st.integers(1, 33),
    ),
)


@st.composite
def check_requests(draw: st.DrawFn) -> pb.CheckRequest:
    roles = st.one_of(st.just("user"), texts)
    msg = pb.CheckRequest(
        ruleset=draw(st.one_of(st.just("support_bot"), texts)),
        version=draw(texts),
        stage=draw(st.one_of(st.sampled_from(range(1, 6)), st.sampled_from(range(7)), INT32)),  # type: ignore[arg-type]
        messages=[
            pb.Message(role=r, content=c) for r, c in draw(st.lists(st.tuples(roles, texts), max_size=5))
        ],
        text=draw(st.one_of(texts, st.integers(0, 200).map(lambda n: "t" * n))),
        metadata=draw(st.dictionaries(texts, texts, max_size=3)),
        request_id=draw(texts),
        approval_id=draw(texts),
    )
    if draw(st.booleans()):
        msg.tool.name, msg.tool.server = draw(st.one_of(st.just("shell.exec"), texts)), draw(texts)
        if draw(st.booleans()):
            msg.tool.arguments.update(
                draw(st.one_of(st.dictionaries(texts, json_values, max_size=5), nested()))
            )
    if draw(st.booleans()):
        msg.principal.id, msg.principal.tenant = draw(texts), draw(texts)
        msg.principal.roles.extend(draw(st.lists(texts, max_size=3)))
        msg.principal.attributes.update(draw(st.dictionaries(texts, texts, max_size=3)))
    return msg


def flip(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    """``data`` with each (position, byte) written over it (past the end: appended)."""
    out = bytearray(data)
    for position, value in edits:
        if out and position < 2 * len(out):
            out[position % len(out)] = value
        else:
            out.append(value)
    return bytes(out)


def assert_decodes_or_names_field(msg: pb.CheckRequest, limits: Limits) -> Request | None:
    """A Request within ``limits`` that survives a round trip, or InvalidRequest naming the field."""
    try:
        request = request_from_proto(msg, limits)
    except InvalidRequest as exc:
        assert FIELD.match(str(exc)), str(exc)
        return None
    assert len(request.text) <= limits.max_text_chars and len(request.messages) <= limits.max_messages
    again = request_from_proto(request_to_proto(msg.ruleset, request, msg.version), limits)
    assert _plain(again) == _plain(request)
    return request


def assert_bytes_decode_or_are_refused(data: bytes, limits: Limits) -> None:
    """Bytes that protobuf cannot parse are refused (DecodeError: INVALID_ARGUMENT); the rest decode."""
    try:
        msg = pb.CheckRequest.FromString(data)
    except DecodeError:
        return
    assert_decodes_or_names_field(msg, limits)


def _plain(request: Request) -> str:
    """The request as JSON (NaN compares equal to itself here)."""
    return json.dumps(asdict(request), sort_keys=True, default=list)
