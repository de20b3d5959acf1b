"""Registering a servicer so that requests are parsed here: bytes that are no request get INVALID_ARGUMENT."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message


def add_servicer(server: grpc.Server, servicer: object, service: ServiceDescriptor) -> None:
    """Serve ``service`` with ``servicer``'s methods, as the generated add_*_to_server would, except
    that requests are parsed here: gRPC answers bytes its own deserializer cannot parse with INTERNAL
    and a traceback in the log, where they deserve INVALID_ARGUMENT saying what protobuf found."""
    handlers = {method.name: _handler(getattr(servicer, method.name), method) for method in service.methods}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def _handler(
    behaviour: Callable[[Any, grpc.ServicerContext], Any], method: MethodDescriptor
) -> grpc.RpcMethodHandler[bytes, Any]:
    """``behaviour`` behind a parser: with no deserializer, gRPC hands the request over as bytes."""
    request_type = message_factory.GetMessageClass(method.input_type)
    serialize = message_factory.GetMessageClass(method.output_type).SerializeToString

    def parsed(raw: bytes, context: grpc.ServicerContext) -> Any:
        return behaviour(_parse(request_type, raw, context), context)

    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(parsed, response_serializer=serialize)
    return grpc.unary_unary_rpc_method_handler(parsed, response_serializer=serialize)


def _parse(kind: type[Message], raw: bytes, context: grpc.ServicerContext) -> Message:
    try:
        return kind.FromString(raw)
    except DecodeError as exc:
        details = f"request: not a valid {kind.DESCRIPTOR.full_name}: {exc}"
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, details)
