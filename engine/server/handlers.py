"""Registering a servicer: its requests parsed here, its calls run on the request pool through the gate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from engine.runtime.observer import observer
from engine.server.admission import Admission, Delay, RequestPool

Behaviour = Callable[[Any, grpc.ServicerContext], Any]
DelayOf = Callable[[Any], Delay]  # how long a request may wait for a worker thread


def add_servicer(
    server: grpc.Server,
    servicer: object,
    service: ServiceDescriptor,
    admission: Admission,
    delay: DelayOf | None = None,
) -> None:
    """Serve ``service`` with ``servicer``'s methods, as the generated add_*_to_server would, except
    that requests are parsed here (gRPC answers bytes its own deserializer cannot parse with INTERNAL
    and a traceback in the log, where they deserve INVALID_ARGUMENT saying what protobuf found), and
    that each call runs on ``admission``'s pool and goes through its gate: a unary call waits for a
    slot (up to ``delay(request)``, else the admission's default), a stream is only counted in."""
    handlers = {
        method.name: _handler(getattr(servicer, method.name), method, admission, delay)
        for method in service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


class _OnPool:
    """A behaviour that grpcio runs on ``pool``: its sync server takes a handler's thread pool from
    the behaviour's ``experimental_thread_pool`` when there is one (grpc/_server.py)."""

    def __init__(self, behaviour: Behaviour, pool: RequestPool) -> None:
        self.behaviour = behaviour
        self.experimental_thread_pool = pool

    def __call__(self, raw: bytes, context: grpc.ServicerContext) -> Any:
        return self.behaviour(raw, context)


def _handler(
    behaviour: Behaviour, method: MethodDescriptor, admission: Admission, delay: DelayOf | None
) -> grpc.RpcMethodHandler[bytes, Any]:
    """``behaviour`` behind a parser and the gate: with no deserializer, gRPC hands over bytes."""
    request_type = message_factory.GetMessageClass(method.input_type)
    serialize = message_factory.GetMessageClass(method.output_type).SerializeToString

    def unary(raw: bytes, context: grpc.ServicerContext) -> Any:
        try:
            request = _parse(request_type, raw, context)
            with admission.working(context, delay(request) if delay else None):
                return behaviour(request, context)
        finally:
            observer().answered(method.name, _code(context))

    def streamed(raw: bytes, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            request = _parse(request_type, raw, context)
            with admission.streaming(context):
                yield from behaviour(request, context)
        finally:
            observer().answered(method.name, _stream_code(context))

    if method.server_streaming:
        on_pool = _OnPool(streamed, admission.pool)
        return grpc.unary_stream_rpc_method_handler(on_pool, response_serializer=serialize)
    return grpc.unary_unary_rpc_method_handler(_OnPool(unary, admission.pool), response_serializer=serialize)


def _parse(kind: type[Message], raw: bytes, context: grpc.ServicerContext) -> Message:
    try:
        return kind.FromString(raw)
    except DecodeError as exc:
        details = f"request: not a valid {kind.DESCRIPTOR.full_name}: {exc}"
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, details)


def _code(context: grpc.ServicerContext) -> str:
    """The status a call ended with: the one it aborted with, else OK."""
    code = context.code()  # type: ignore[attr-defined]  # grpcio has it; its stubs do not
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


def _stream_code(context: grpc.ServicerContext) -> str:
    """The status a stream ended with: as ``_code``, but CANCELLED when the caller went away first."""
    code = _code(context)
    return "CANCELLED" if code == "OK" and not context.is_active() else code
