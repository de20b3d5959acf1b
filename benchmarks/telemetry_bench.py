"""What metrics and tracing cost: the field-and-regex Check with telemetry off, metrics on, and tracing on
at 1% sampling, side by side in one run: in process (Guard.check, interleaved blocks: latency and CPU
per Check), then over gRPC at 1,000/s open loop (interleaved rounds, a server started for each).

Run: python -m benchmarks.telemetry_bench [--rounds 5 --seconds 8] [--pin] [--off-only]. --pin runs the
server on one CPU and this process (the load generator) on another. Results: benchmarks/TELEMETRY.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from benchmarks.grpc_bench import REQUESTS, RULESETS, Result, Setup, in_turn, open_loop, palisade
from dsl.types import Outcome, Stage
from engine.cli.bench.loadgen import callers, server_process
from engine.config import ServeConfig
from engine.guard import Guard
from engine.runtime.decision import Decision
from engine.runtime.observer import Observer, install, observer
from engine.runtime.request import Request, request_from_dict
from engine.telemetry import MULTIPROC_ENV, Telemetry, start_worker

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
class Pins:
    """The CPU this process runs on (load generator, OTLP receiver, in-process part), and the server's."""

    generator: int
    server: int

    def server_command(self, command: list[str]) -> list[str]:
        return ["taskset", "--cpu-list", str(self.server), *command]

    def pin_self(self) -> None:
        """Every thread of this process onto the generator's CPU (threads started later inherit it)."""
        for task in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(task), {self.generator})


def pins() -> Pins | str:
    """Two CPUs this process may use, or what is missing for --pin."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return f"--pin needs 2 CPUs: this process may use {available} of the machine's {os.cpu_count()}"
    if shutil.which("taskset") is None:
        return "--pin needs taskset (util-linux) to start the server on its own CPU"
    return Pins(generator=available[0], server=available[1])


@dataclass(frozen=True, slots=True)
class Row:
    variant: str
    runs: list[Result]

    @property
    def p95_ms(self) -> float:
        return statistics.median(r.p95_ms for r in self.runs)

    def line(self, baseline: Row) -> str:
        """Its medians over the rounds, and the p95 against off's in the same round (paired: a round's
        variants ran one after the other, so they saw about the same load), with the median of those."""
        p50 = statistics.median(r.p50_ms for r in self.runs)
        p99 = statistics.median(r.p99_ms for r in self.runs)
        paired = [r.p95_ms / b.p95_ms - 1 for r, b in zip(self.runs, baseline.runs, strict=True)]
        each = ", ".join(
            f"{r.p95_ms:.3f} ({change * 100:+.0f}%)" for r, change in zip(self.runs, paired, strict=True)
        )
        errors = sum(r.errors for r in self.runs)
        lag = max(r.send_lag_p99_ms for r in self.runs)
        return (
            f"| {self.variant} | {p50:.3f} | **{self.p95_ms:.3f}** | {p99:.3f} | {each} | {errors} "
            f"| {lag:.3f} | {statistics.median(paired) * 100:+.1f}% |"
        )


def run(
    rounds: int,
    seconds: float,
    rate: float,
    audit: str,
    folder: Path,
    *,
    variants: Sequence[str],
    pinned: Pins | None,
) -> list[Row]:
    """Each round starts every variant's server in turn (on its own CPU when ``pinned``) and measures
    it, each round starting one variant later than the last, so that no variant always runs first
    or right after another's server stopped; returns a row per variant."""
    results: dict[str, list[Result]] = {name: [] for name in variants}
    for round_ in range(rounds):
        for name in in_turn(variants, round_):
            tables = VARIANTS[name]
            config = folder / f"{len(results[name])}-{name.split()[0]}.toml"
            config.write_text(f'[audit]\ndurability = "{audit}"\n\n{tables}', encoding="utf-8")
            data_dir = folder / f"data-{name.split()[0]}"
            command = palisade(1, Setup(str(data_dir), str(config)))
            if pinned:
                command = pinned.server_command(command)
            with server_process(command) as server, callers(server.target, 4) as calls:
                open_loop("warm-up", calls, rate, 1.0)
                result = open_loop(name, calls, rate, seconds)
            results[name].append(result)
            print(f"round {round_ + 1}: {result.line()}", flush=True)
    return [Row(name, runs) for name, runs in results.items()]


@dataclass(frozen=True, slots=True)
class Cost:
    """One variant in process: Guard.check's latency and this process's CPU time per Check."""

    variant: str
    latencies_us: list[float]
    cpu_us: float

    def line(self, baseline: Cost) -> str:
        ordered = sorted(self.latencies_us)
        p50, p95 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.95)]
        base = sorted(baseline.latencies_us)[int(len(baseline.latencies_us) * 0.95)]
        return (
            f"| {self.variant} | {p50:.1f} | **{p95:.1f}** | {(p95 / base - 1) * 100:+.1f}% "
            f"| {self.cpu_us:.1f} | {self.cpu_us - baseline.cpu_us:+.1f} |"
        )


def in_process(blocks: int, per_block: int, folder: Path) -> list[Cost]:
    """Guard.check on the same requests with each variant's observer installed in turn, ``blocks``
    times over: latency per Check, and CPU time (this process's own, so other load hardly counts)."""
    os.environ[MULTIPROC_ENV] = str(folder / "metrics")  # before prometheus_client is imported
    (folder / "metrics").mkdir()
    base = ServeConfig.model_validate(
        {"rulesets": str(RULESETS), "data_dir": str(folder / "guard"), "audit": {"durability": "async"}}
    )
    observers: dict[str, Observer] = {"off": Observer()}
    for name, tables in VARIANTS.items():
        if tables:
            config = ServeConfig.model_validate(base.model_dump() | tomllib.loads(tables))
            telemetry = start_worker(config)
            assert telemetry is not None
            observers[name] = telemetry
    install(Observer())
    requests = [request_from_dict(r) for r in REQUESTS]
    latencies: dict[str, list[float]] = {name: [] for name in observers}
    cpu: dict[str, float] = dict.fromkeys(observers, 0.0)
    with Guard.open(base) as guard:
        for _ in range(blocks):
            for name, observer in observers.items():
                install(observer)
                cpu[name] += _block(guard, requests, per_block, latencies[name])
    for observer in observers.values():
        if isinstance(observer, Telemetry):
            observer.close()  # the spans still queued go out
    count = blocks * per_block
    return [Cost(name, latencies[name], cpu[name] / count * 1e6) for name in observers]


def noop_ns(calls: int = 200_000) -> float:
    """What telemetry off costs a Check: the hook's call into the no-op observer, in ns."""
    install(Observer())
    decision = Decision(Outcome.ALLOW, "r", "1", "h")
    started = time.perf_counter()
    for _ in range(calls):
        observer().checked(Stage.INPUT, decision, decision, decision_id="d", started=0.0, recording=0.0)
    return (time.perf_counter() - started) / calls * 1e9


def _block(guard: Guard, requests: list[Request], count: int, latencies: list[float]) -> float:
    """``count`` Checks, their latencies appended (us); returns the CPU seconds they took."""
    cpu = time.process_time()
    for i in range(count):
        started = time.perf_counter()
        guard.check("grpc_bench", requests[i % len(requests)])
        latencies.append((time.perf_counter() - started) * 1e6)
    return time.process_time() - cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each measures every variant once")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each open-loop run")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop arrivals per second")
    parser.add_argument(
        "--audit",
        choices=["sync", "journal", "async"],
        default="journal",
        help="audit durability (default: the shipped one)",
    )
    parser.add_argument("--blocks", type=int, default=20, help="in process: blocks of Checks per variant")
    parser.add_argument("--per-block", type=int, default=1000, help="in process: Checks per block")
    parser.add_argument("--pin", action="store_true", help="server on one CPU, this process on another")
    parser.add_argument("--off-only", action="store_true", help="over gRPC, off alone: a rate probe")
    args = parser.parse_args(argv)
    pinned = pins() if args.pin else None
    if isinstance(pinned, str):
        parser.error(pinned)
    if pinned:
        pinned.pin_self()  # before the receiver's and the senders' threads start
        print(f"pinned: load generator on CPU {pinned.generator}, server on CPU {pinned.server}")
    print(f"load average at the start: {_load()}", flush=True)
    with tempfile.TemporaryDirectory() as folder, otlp_receiver() as receiver:
        print(f"telemetry off: the no-op observer's call takes {noop_ns():.0f} ns a Check")
        costs = in_process(args.blocks, args.per_block, Path(folder))
        print("| variant (in process) | p50 us | p95 us | p95 vs off | CPU us per Check | CPU vs off |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for cost in costs:
            print(cost.line(costs[0]))
        variants = ["off"] if args.off_only else list(VARIANTS)
        rows = run(
            args.rounds, args.seconds, args.rate, args.audit, Path(folder), variants=variants, pinned=pinned
        )
    print(f"spans received over OTLP: {receiver.spans}")
    if not rows[0].runs:
        return 0
    where = f"pinned {pinned}" if pinned else "not pinned"
    print(f"\n{os.cpu_count()} CPUs, {where}, python {sys.version.split()[0]}")
    print(f"{args.rate:.0f}/s, audit {args.audit}")
    print(f"load average at the end: {_load()}")
    print(
        "| variant | p50 ms | p95 ms (median of rounds) | p99 ms | p95 of each round (vs off in that round)"
        " | errors | send lag p99 ms (max of rounds) | p95 vs off (median of rounds) |"
    )
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for row in rows:
        print(row.line(rows[0]))
    return 0


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
