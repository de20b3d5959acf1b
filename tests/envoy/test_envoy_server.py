"""The processor's own gRPC server: its bound on exchanges in flight, and a graceful stop."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

from engine.config import Limits
from engine.envoy.config import EnvoyConfig
from engine.envoy.server import EnvoyServer
from engine.guard import Guard

# a new exchange as the server stops: cancelled (it arrived as the stop began) or unavailable (after)
REFUSED = (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
BODY = b'{"model": "small", "messages": [{"role": "user", "content": "Hello there."}]}'


def _headers() -> Any:
    pairs = {":method": b"POST", ":path": b"/v1/chat/completions", "x-user": b"alice"}
    headers = [base_pb2.HeaderValue(key=key, raw_value=value) for key, value in pairs.items()]
    return ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=base_pb2.HeaderMap(headers=headers)))


def _body() -> Any:
    return ep.ProcessingRequest(request_body=ep.HttpBody(body=BODY, end_of_stream=True))


class Exchange:
    """One ext_proc stream from a client, its messages sent one at a time."""

    def __init__(self, stub: Any) -> None:
        self.sent: queue.Queue[Any] = queue.Queue()
        self.answers = stub.Process(iter(self.sent.get, None))

    def send(self, request: Any) -> Any:
        self.sent.put(request)
        return next(self.answers)

    def end(self) -> list[Any]:
        self.sent.put(None)
        return list(self.answers)


@contextmanager
def _serving(guard: Guard, threads: int) -> Iterator[tuple[EnvoyServer, Any]]:
    config = EnvoyConfig(enabled=True, listen="127.0.0.1:0", ruleset="gateway", threads=threads)
    server = EnvoyServer(guard, config, Limits())
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield server, ep_grpc.ExternalProcessorStub(channel)
    finally:
        server.stop(0)


def test_past_its_threads_an_exchange_is_refused(guard: Guard) -> None:
    with _serving(guard, threads=1) as (_, stub):
        first = Exchange(stub)
        assert first.send(_headers()).HasField("request_headers")
        with pytest.raises(grpc.RpcError) as refused:
            Exchange(stub).send(_headers())
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert first.send(_body()).HasField("request_body")  # the one in flight goes on
        assert first.end() == []


def test_a_stop_refuses_new_exchanges_and_lets_those_in_flight_finish(guard: Guard) -> None:
    with _serving(guard, threads=4) as (server, stub):
        first = Exchange(stub)
        assert first.send(_headers()).HasField("request_headers")
        stopping = threading.Thread(target=server.stop, args=(30,))
        stopping.start()
        assert _refused_within(stub, 10.0) in REFUSED
        assert first.send(_body()).HasField("request_body")
        assert first.end() == []
        stopping.join(timeout=10)
        assert not stopping.is_alive()


def _refused_within(stub: Any, seconds: float) -> grpc.StatusCode | None:
    """The code a new exchange is refused with, once the server refuses them (None: never, in time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            Exchange(stub).send(_headers())
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            return code
        time.sleep(0.01)
    return None
