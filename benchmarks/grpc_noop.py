"""A no-op palisade.v1.Guard/Check server (empty reply, no decoding): the grpcio floor for grpc_bench."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc

from engine.config import ServeConfig


def _check(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b""  # an empty CheckResponse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0")
    args = parser.parse_args(argv)
    defaults = ServeConfig()  # the same thread pool and concurrency limit as `palisade serve`
    server = grpc.server(
        ThreadPoolExecutor(defaults.threads),
        options=[("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=defaults.max_concurrent_rpcs,
    )
    handler = grpc.unary_unary_rpc_method_handler(_check)
    service = grpc.method_handlers_generic_handler("palisade.v1.Guard", {"Check": handler})
    server.add_generic_rpc_handlers((service,))
    port = server.add_insecure_port(args.listen)
    server.start()
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    print(f"palisade: ready on 127.0.0.1:{port} (no-op)", file=sys.stderr, flush=True)
    stopping.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
