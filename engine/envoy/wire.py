"""Envoy's ext_proc v3 messages (from the xds-protos package), read and made in one typed place."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2  # type: ignore[import-untyped]
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2  # type: ignore[import-untyped]
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep  # type: ignore[import-untyped]
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from envoy.type.v3 import http_status_pb2  # type: ignore[import-untyped]

# xds-protos ships no type stubs: its messages are Any here, and only this module touches them
Message = Any
SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
_MODE = processing_mode_pb2.ProcessingMode
BUFFERED, FULL_DUPLEX, NONE = _MODE.BUFFERED, _MODE.FULL_DUPLEX_STREAMED, _MODE.NONE
_SKIP = _MODE.SKIP
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
FILTER = "envoy.filters.http.ext_proc"  # the key of the filter's attributes in a message
# attributes that stand for request headers when a route skips them (ExternalProcessor.request_attributes)
_HEADER_ATTRIBUTES = {"request.path": ":path", "request.method": ":method"}
_HEADER_ATTRIBUTE = re.compile(r"""request\.headers\[(["'])([^"']+)\1\]""")


def add_servicer(servicer: object, server: grpc.Server) -> None:
    """Serve ``servicer`` (an object with ``Process``) as the ExternalProcessor service."""
    ep_grpc.add_ExternalProcessorServicer_to_server(servicer, server)


def kind(request: Message) -> str:
    """Which part of the HTTP exchange ``request`` carries: request_headers, response_body, ..."""
    return str(request.WhichOneof("request"))


def headers_of(request: Message) -> dict[str, str]:
    """The headers (or trailers) of a headers message, names lower-case, repeated ones comma-joined."""
    part = getattr(request, kind(request))
    found: dict[str, str] = {}
    for header in part.headers.headers:
        value = header.raw_value.decode("utf-8", "replace") if header.raw_value else header.value
        found[header.key] = f"{found[header.key]},{value}" if header.key in found else value
    return found


def body_of(request: Message) -> tuple[bytes, bool]:
    """A body message's bytes and whether it ends the body."""
    part = getattr(request, kind(request))
    return bytes(part.body), bool(part.end_of_stream)


def route_name(request: Message) -> str:
    """The ``xds.route_name`` attribute, when the filter sends it ("" otherwise)."""
    value = request.attributes[FILTER].fields.get("xds.route_name") if FILTER in request.attributes else None
    return str(value.string_value) if value is not None else ""


def attribute_headers(request: Message) -> dict[str, str]:
    """The request headers that the attributes of ``request`` carry (``request.path`` as ``:path``,
    ``request.method`` as ``:method``, ``request.headers["x"]`` as ``x``): what a filter that skips
    the request headers message sends with the request body. Envoy leaves out a header not sent."""
    found: dict[str, str] = {}
    fields = request.attributes[FILTER].fields if FILTER in request.attributes else {}
    for key, value in fields.items():
        matched = _HEADER_ATTRIBUTE.fullmatch(key)
        name = matched.group(2).lower() if matched else _HEADER_ATTRIBUTES.get(key)
        if name and value.WhichOneof("kind") == "string_value":
            found[name] = value.string_value
    return found


def header_mutation(set_headers: Mapping[str, str] | None = None, remove: Iterable[str] = ()) -> Message:
    options = [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=key, raw_value=value.encode("utf-8")), append_action=_OVERWRITE
        )
        for key, value in (set_headers or {}).items()
    ]
    return ep.HeaderMutation(set_headers=options, remove_headers=list(remove))


def proceed(
    part: str,
    *,
    body: bytes | None = None,
    set_headers: Mapping[str, str] | None = None,
    remove: Iterable[str] = (),
    response_body_mode: int | None = None,
    skip_bodies: bool = False,
) -> Message:
    """Let ``part`` go on, changed as asked: its body replaced by ``body`` (b"": emptied), headers set
    or removed, and (on headers) the response body's mode chosen, or all later parts skipped."""
    if part.endswith("trailers"):
        return ep.ProcessingResponse(**{part: ep.TrailersResponse()})
    common = ep.CommonResponse()
    if set_headers or remove:
        common.header_mutation.CopyFrom(header_mutation(set_headers, remove))
    if body:
        common.body_mutation.body = body
    elif body is not None:
        common.body_mutation.clear_body = True
    wrapper = ep.HeadersResponse if part.endswith("headers") else ep.BodyResponse
    answer = ep.ProcessingResponse(**{part: wrapper(response=common)})
    if response_body_mode is not None:
        answer.mode_override.response_body_mode = response_body_mode
    if skip_bodies:
        mode = answer.mode_override
        mode.request_body_mode, mode.response_body_mode = NONE, NONE
        mode.response_header_mode, mode.response_trailer_mode = _SKIP, _SKIP
    return answer


def streamed(body: bytes, end: bool) -> Message:
    """In FULL_DUPLEX_STREAMED mode, the response body's next bytes (``end``: its last). Envoy sends
    each chunk without waiting for an answer, and sends on exactly the bytes answered."""
    part = ep.StreamedBodyResponse(body=body, end_of_stream=end)
    common = ep.CommonResponse(body_mutation=ep.BodyMutation(streamed_response=part))
    return ep.ProcessingResponse(response_body=ep.BodyResponse(response=common))


def immediate(status: int, body: bytes, headers: Mapping[str, str], details: str) -> Message:
    """Answer the client now with ``status``, ``headers`` and ``body``; nothing goes further."""
    return ep.ProcessingResponse(
        immediate_response=ep.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=header_mutation(headers),
            body=body,
            details=details,
        )
    )
