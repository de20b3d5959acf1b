"""The ext_proc transport alone: a bidi-stream round trip per message, grpcio sync server vs grpc.aio.

Each server variant runs in a process of its own, answering every message on
``/envoy.service.ext_proc.v3.ExternalProcessor/Process`` at once with fixed bytes (no decoding, no
Check); the client (this process, grpc.aio) opens an exchange like Envoy's (a stream, ``--messages``
round trips, the end), ``--streams`` of them at once, and times each message's round trip and each
exchange, alternating the variants in ``--rounds`` rounds. Results: benchmarks/ENVOY.md.

    .venv/bin/python -m benchmarks.ext_proc_transport
    .venv/bin/python -m benchmarks.ext_proc_transport --variants sync,aio --streams 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import grpc

from engine.cli.bench.loadgen import READY, percentile, server_process
from engine.envoy.config import EnvoyConfig
from engine.envoy.wire import SERVICE

METHOD = f"/{SERVICE}/Process"
REQUEST = b"r" * 600  # about a chat request body with its attributes
REPLY = b"a" * 40  # about a CommonResponse that lets the part go on
LATENCY = [("grpc.optimization_target", "latency")]


@dataclass(frozen=True)
class Variant:
    """One way to serve the processor: grpcio's sync server (``threads`` in its pool) or grpc.aio
    (each answer inline on the event loop, or on a thread pool: ``executor``)."""

    aio: bool = False
    threads: int = EnvoyConfig().threads
    options: list[tuple[str, Any]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    executor: bool = False


VARIANTS = {
    "sync": Variant(),  # as engine/envoy/server.py builds it
    "sync-latency": Variant(options=LATENCY),
    "sync-poll": Variant(env={"GRPC_POLL_STRATEGY": "poll"}),
    "sync-8": Variant(threads=8),
    "aio": Variant(aio=True),
    "aio-executor": Variant(aio=True, executor=True),
    "aio-latency": Variant(aio=True, options=LATENCY),
}


# The server side, in its own process.


def _answer(request: bytes) -> bytes:
    return REPLY


def _sync_process(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for request in requests:
        yield _answer(request)


def serve(name: str) -> None:
    """Serve ``name`` on a free loopback port until killed; print the ready line (stderr) once it listens."""
    variant = VARIANTS[name]
    if variant.aio:
        asyncio.run(_serve_aio(variant))
        return
    pool = ThreadPoolExecutor(variant.threads)
    server = grpc.server(pool, options=variant.options, maximum_concurrent_rpcs=variant.threads)
    server.add_generic_rpc_handlers((_handlers(grpc.stream_stream_rpc_method_handler(_sync_process)),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"{READY}127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.wait_for_termination()


async def _serve_aio(variant: Variant) -> None:
    pool = ThreadPoolExecutor(variant.threads) if variant.executor else None
    loop = asyncio.get_running_loop()

    async def process(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield _answer(request) if pool is None else await loop.run_in_executor(pool, _answer, request)

    server = grpc.aio.server(options=variant.options, maximum_concurrent_rpcs=variant.threads)
    server.add_generic_rpc_handlers((_handlers(grpc.stream_stream_rpc_method_handler(process)),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"{READY}127.0.0.1:{port}", file=sys.stderr, flush=True)
    await server.wait_for_termination()


def _handlers(handler: grpc.RpcMethodHandler[bytes, bytes]) -> grpc.GenericRpcHandler[bytes, bytes]:
    return grpc.method_handlers_generic_handler(SERVICE, {"Process": handler})


# The client side: this process.


@dataclass
class Timings:
    messages: list[float] = field(default_factory=list)  # each message's round trip, ms
    exchanges: list[float] = field(default_factory=list)  # each exchange, stream opened to closed, ms


async def _exchanges(target: str, count: int, messages: int, streams: int, into: Timings) -> None:
    """``count`` exchanges of ``messages`` round trips, ``streams`` at a time, on one channel."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.stream_stream(METHOD, None, None)  # bytes as they are

        async def one() -> None:
            start = time.perf_counter()
            stream = call(None)  # written one by one
            for _ in range(messages):
                sent = time.perf_counter()
                await stream.write(REQUEST)
                await stream.read()
                into.messages.append((time.perf_counter() - sent) * 1e3)
            await stream.done_writing()
            await stream.code()
            into.exchanges.append((time.perf_counter() - start) * 1e3)

        async def caller(n: int) -> None:
            for _ in range(n):
                await one()

        await asyncio.gather(*(caller(count // streams) for _ in range(streams)))


async def _rounds(targets: dict[str, str], timings: dict[str, Timings], args: argparse.Namespace) -> None:
    """A warm-up of each variant (connections, threads, caches), then ``args.rounds`` rounds of them all."""
    names = list(targets)
    for name in names:
        await _exchanges(targets[name], 100, args.messages, args.streams, Timings())
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]  # each leads in turn
        for name in order:
            await _exchanges(targets[name], args.exchanges, args.messages, args.streams, timings[name])


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {f"p{q}": round(percentile(ordered, q), 3) for q in (50, 95, 99)}


def main(argv: list[str] | None = None) -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--serve", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    known = ", ".join(VARIANTS)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {known}")
    parser.add_argument("--exchanges", type=int, default=800, help="per variant and round")
    parser.add_argument("--messages", type=int, default=3, help="round trips per exchange (Envoy's chat: 3)")
    parser.add_argument("--streams", type=int, default=1, help="exchanges at once")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    names = args.variants.split(",")
    timings = {name: Timings() for name in names}
    with ExitStack() as stack:
        targets = {name: stack.enter_context(server_process(_command(name))).target for name in names}
        asyncio.run(_rounds(targets, timings, args))
    results = {
        name: {"message_ms": _stats(t.messages), "exchange_ms": _stats(t.exchanges), "n": len(t.messages)}
        for name, t in timings.items()
    }
    settings = {k: v for k, v in vars(args).items() if k != "serve"}
    machine = {"cpus": os.cpu_count(), "grpc": grpc.__version__}
    print(json.dumps({**machine, **settings, "results": results}, indent=2))
    return 0


def _command(name: str) -> list[str]:
    env = [f"{key}={value}" for key, value in VARIANTS[name].env.items()]  # read by grpc at import
    return ["env", *env, sys.executable, "-m", "benchmarks.ext_proc_transport", "--serve", name]


if __name__ == "__main__":
    sys.exit(main())
