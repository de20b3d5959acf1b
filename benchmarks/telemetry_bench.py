"""What metrics and tracing cost: the field-and-regex Check at 1,000/s open loop, telemetry off, metrics
on, tracing on at 1% sampling, in interleaved rounds of one run (side by side on a noisy machine).

Run: python -m benchmarks.telemetry_bench [--rounds 3 --seconds 10]. Results: benchmarks/TELEMETRY.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from benchmarks.grpc_bench import Result, Setup, open_loop, palisade
from engine.cli.bench.loadgen import callers, server_process

VARIANTS: dict[str, str] = {  # name -> the config's telemetry tables
    "off": "",
    "metrics on": '[metrics]\naddress = "127.0.0.1:0"\n',
    "tracing 1%": "[tracing]\nenabled = true\nsample_ratio = 0.01\n",
}


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver that counts the spans it is sent (the exporter needs somewhere to go)."""

    def __init__(self) -> None:
        self.spans = 0
        self.lock = threading.Lock()

    def Export(  # noqa: N802
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        count = sum(len(s.spans) for rs in request.resource_spans for s in rs.scope_spans)
        with self.lock:
            self.spans += count
        return trace_service_pb2.ExportTraceServiceResponse()


@contextmanager
def otlp_receiver() -> Iterator[_Receiver]:
    """A receiver on a free loopback port, named in OTEL_EXPORTER_OTLP_ENDPOINT for the servers."""
    receiver = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        server.stop(0)


@dataclass(frozen=True, slots=True)
class Row:
    variant: str
    runs: list[Result]

    @property
    def p95_ms(self) -> float:
        return statistics.median(r.p95_ms for r in self.runs)

    def line(self, baseline: float) -> str:
        p50 = statistics.median(r.p50_ms for r in self.runs)
        p99 = statistics.median(r.p99_ms for r in self.runs)
        each = ", ".join(f"{r.p95_ms:.3f}" for r in self.runs)
        errors = sum(r.errors for r in self.runs)
        change = (self.p95_ms / baseline - 1) * 100
        return (
            f"| {self.variant} | {p50:.3f} | **{self.p95_ms:.3f}** | {p99:.3f} | {each} | {errors} "
            f"| {change:+.1f}% |"
        )


def run(rounds: int, seconds: float, rate: float, audit: str, folder: Path) -> list[Row]:
    """Each round starts every variant's server in turn and measures it; returns a row per variant."""
    results: dict[str, list[Result]] = {name: [] for name in VARIANTS}
    for round_ in range(rounds):
        for name, tables in VARIANTS.items():
            config = folder / f"{len(results[name])}-{name.split()[0]}.toml"
            config.write_text(f'[audit]\ndurability = "{audit}"\n\n{tables}', encoding="utf-8")
            data_dir = folder / f"data-{name.split()[0]}"
            command = palisade(1, Setup(str(data_dir), str(config)))
            with server_process(command) as server, callers(server.target, 4) as calls:
                open_loop("warm-up", calls, rate, 1.0)
                result = open_loop(name, calls, rate, seconds)
            results[name].append(result)
            print(f"round {round_ + 1}: {result.line()}", flush=True)
    return [Row(name, runs) for name, runs in results.items()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each measures every variant once")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each open-loop run")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop arrivals per second")
    parser.add_argument("--audit", choices=["sync", "async"], default="async", help="audit durability")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder, otlp_receiver() as receiver:
        rows = run(args.rounds, args.seconds, args.rate, args.audit, Path(folder))
    baseline = rows[0].p95_ms
    print(f"\n{os.cpu_count()} CPUs, python {sys.version.split()[0]}, {args.rate:.0f}/s, audit {args.audit}")
    print(
        "| variant | p50 ms | p95 ms (median of rounds) | p99 ms | p95 of each round | errors | p95 vs off |"
    )
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
    for row in rows:
        print(row.line(baseline))
    print(f"spans received over OTLP: {receiver.spans}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
