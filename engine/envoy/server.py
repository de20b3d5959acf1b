"""The ExternalProcessor on a gRPC server of its own, at the `[envoy]` listen address, over a given Guard."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import grpc

from engine.config import Limits
from engine.envoy import wire
from engine.envoy.config import EnvoyConfig
from engine.envoy.processor import ExternalProcessor
from engine.guard import Guard, StartError

_HEADROOM_BYTES = 1024 * 1024  # an ext_proc message holds a body and a little more


class EnvoyServer:
    """Serves Envoy's ext_proc filter. Each HTTP exchange in flight holds one of ``config.threads``
    threads for as long as it lasts (a streamed answer: until its end); past that many, an
    exchange is refused (RESOURCE_EXHAUSTED) and Envoy applies ``failure_mode_allow``. The Guard
    is the caller's: it is neither opened nor closed here."""

    def __init__(
        self, guard: Guard, config: EnvoyConfig, limits: Limits, *, reuse_port: bool = False
    ) -> None:
        self.config = config
        self.pool = ThreadPoolExecutor(config.threads, thread_name_prefix="palisade-envoy")
        options = [
            ("grpc.max_receive_message_length", 2 * config.max_body_bytes + _HEADROOM_BYTES),
            ("grpc.so_reuseport", int(reuse_port)),
        ]
        self.server = grpc.server(self.pool, options=options, maximum_concurrent_rpcs=config.threads)
        wire.add_servicer(ExternalProcessor(guard, config, limits), self.server)
        self.port = 0

    def start(self) -> int:
        """Bind and serve; returns the port (the chosen one when the listen address says port 0)."""
        try:
            self.port = self.server.add_insecure_port(self.config.listen)
        except RuntimeError as exc:
            raise StartError(f"envoy.listen: cannot bind {self.config.listen}: {exc}") from None
        if not self.port:
            raise StartError(f"envoy.listen: cannot bind {self.config.listen}")
        self.server.start()
        return self.port

    def stop(self, grace_s: float | None = None) -> None:
        """Refuse new exchanges, let those in flight finish (up to ``grace_s``), release the threads."""
        self.server.stop(grace_s).wait()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EnvoyServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(0)
