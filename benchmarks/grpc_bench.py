"""gRPC Check latency over loopback, the client in its own process: one caller, open loop, max rate.

Run: python -m benchmarks.grpc_bench [--scenario all|single|open|max]. Results: benchmarks/GRPC.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import grpc

from engine.cli.bench import loadgen
from engine.cli.bench.loadgen import (
    CALL_TIMEOUT_S,
    Call,
    Schedule,
    callers,
    elapsed_s,
    palisade_server,
    percentile,
    server_process,
)
from engine.protocol.request_codec import request_to_proto
from engine.runtime.request import request_from_dict

RULESETS = Path(__file__).resolve().parent / "grpc_rulesets"
SENDERS = 32  # open-loop sender threads: enough that one slow answer does not delay other arrivals
# A mix the ruleset fully evaluates: clean prompts (every input rule runs), a block, a tool call.
REQUESTS: list[dict[str, Any]] = [
    {"stage": "input", "text": "What is the status of order 1234? I ordered it on Monday."},
    {
        "stage": "input",
        "messages": [
            {"role": "system", "content": "You are a helpful support assistant."},
            {"role": "user", "content": "Can you help me change my delivery address?"},
        ],
        "principal": {"id": "u1", "tenant": "acme", "roles": ["customer"]},
        "metadata": {"channel": "web"},
    },
    {"stage": "input", "text": "my ssn is 123-45-6789, please update my account"},
    {
        "stage": "tool_call",
        "tool": {"name": "fs.read", "arguments": {"path": "/home/app/report.txt"}},
        "principal": {"id": "agent-7", "roles": ["agent"]},
    },
]


def encoded_requests() -> list[bytes]:
    return [request_to_proto("grpc_bench", request_from_dict(r)).SerializeToString() for r in REQUESTS]


@dataclass(frozen=True, slots=True)
class Result:
    """One measured run: latencies in milliseconds."""

    name: str
    target_rps: float
    sent: int
    errors: int
    achieved_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    send_lag_p99_ms: float = math.nan  # open loop: how late the client itself sent (part of the latency)

    def line(self) -> str:
        rate = f"{self.target_rps:>6.0f}/s" if self.target_rps else "  closed"
        return (
            f"{self.name:<28} {rate} sent {self.sent:>6} errors {self.errors:>4} "
            f"got {self.achieved_rps:>7.0f}/s  p50 {self.p50_ms:6.3f}  p95 {self.p95_ms:6.3f}  "
            f"p99 {self.p99_ms:6.3f}  max {self.max_ms:7.3f} ms"
            + (f"  (send lag p99 {self.send_lag_p99_ms:.3f})" if not math.isnan(self.send_lag_p99_ms) else "")
        )


def summarise(name: str, rate: float, latencies_s: list[float], errors: int, wall_s: float) -> Result:
    ordered = sorted(x * 1000 for x in latencies_s)
    return Result(
        name=name,
        target_rps=rate,
        sent=len(latencies_s) + errors,
        errors=errors,
        achieved_rps=len(latencies_s) / wall_s if wall_s > 0 else 0.0,
        p50_ms=percentile(ordered, 50),
        p95_ms=percentile(ordered, 95),
        p99_ms=percentile(ordered, 99),
        max_ms=ordered[-1] if ordered else math.nan,
    )


@dataclass(frozen=True, slots=True)
class Setup:
    """Where `palisade serve` keeps its data, and its --config file (None: the defaults)."""

    data_dir: str
    config: str | None = None


T = TypeVar("T")


def in_turn(variants: Sequence[T], round_: int) -> list[T]:
    """The variants in the order round ``round_`` runs them: each round starts one later than the
    last, so that none always runs first, or last, or right after the same other one (a fixed order
    cost the third variant up to +20% at p95 on the shared VM: benchmarks/TELEMETRY.md)."""
    shift = round_ % len(variants)
    return [*variants[shift:], *variants[:shift]]


def palisade(workers: int, setup: Setup) -> list[str]:
    return palisade_server(str(RULESETS), setup.data_dir, workers, setup.config)


def noop_server() -> list[str]:
    return [sys.executable, "-m", "benchmarks.grpc_noop", "--listen", "127.0.0.1:0"]


def closed_loop(name: str, call: Call, count: int) -> Result:
    """One caller, one call at a time: the per-call latency floor."""
    requests = encoded_requests()
    for i in range(min(count, 500)):  # warm up
        call(requests[i % len(requests)], timeout=CALL_TIMEOUT_S)
    latencies, started = [], time.perf_counter()
    for i in range(count):
        sent = time.perf_counter()
        call(requests[i % len(requests)], timeout=CALL_TIMEOUT_S)
        latencies.append(time.perf_counter() - sent)
    return summarise(name, 0.0, latencies, 0, time.perf_counter() - started)


def open_loop(name: str, calls: list[Call], rate: float, seconds: float, senders: int = SENDERS) -> Result:
    """Arrivals on a fixed schedule from this process (loadgen.open_loop); latency from the schedule."""
    count = int(rate * seconds)
    schedule = Schedule(time.perf_counter() + 0.05, rate, 0, count)
    samples = loadgen.open_loop(calls, encoded_requests(), schedule, senders)
    done = [s.latency_s for s in samples if s.code == "OK"]
    result = summarise(name, rate, done, count - len(done), elapsed_s(samples, rate, 0))
    return replace(result, send_lag_p99_ms=percentile(sorted(s.lag_s for s in samples), 99) * 1000)


# Scenarios


def single(setup: Setup, count: int) -> list[Result]:
    results = []
    with server_process(noop_server()) as server, callers(server.target, 1) as (call,):
        results.append(closed_loop("no-op grpcio, 1 caller", call, count))
    with server_process(palisade(1, setup)) as server, callers(server.target, 1) as (call,):
        results.append(closed_loop("palisade, 1 caller", call, count))
    return results


def open_rate(setup: Setup, rate: float, seconds: float) -> list[Result]:
    results = []
    with server_process(noop_server()) as server, callers(server.target, 4) as calls:
        open_loop("warm-up", calls, rate, 1.0)
        results.append(open_loop("no-op grpcio, open loop", calls, rate, seconds))
    with server_process(palisade(1, setup)) as server, callers(server.target, 4) as calls:
        open_loop("warm-up", calls, rate, 1.0)
        results.append(open_loop("palisade, open loop", calls, rate, seconds))
    return results


def max_rate(setup: Setup, rates: list[float], seconds: float, workers: int) -> list[Result]:
    results = []
    with server_process(palisade(workers, setup)) as server, callers(server.target, 8) as calls:
        open_loop("warm-up", calls, rates[0], 1.0)
        for rate in rates:
            result = open_loop(f"palisade, {workers} workers", calls, rate, seconds)
            results.append(result)
            print(result.line(), flush=True)
            if result.errors or result.p99_ms >= 10.0:
                break
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=["all", "single", "open", "max"], default="all")
    parser.add_argument("--calls", type=int, default=5000, help="closed-loop calls per server")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop arrivals per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each open-loop run")
    parser.add_argument("--rates", default="1000,1500,2000,2500,3000,3500,4000", help="max-rate steps")
    parser.add_argument("--step-seconds", type=float, default=5.0, help="length of each max-rate step")
    parser.add_argument("--workers", type=int, default=2, help="server workers for the max-rate steps")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--config", help="a `palisade serve --config` file, e.g. benchmarks/async_audit.toml")
    args = parser.parse_args(argv)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as data_dir:
        setup = Setup(data_dir, args.config)
        if args.scenario in ("all", "single"):
            results += single(setup, args.calls)
        if args.scenario in ("all", "open"):
            results += open_rate(setup, args.rate, args.seconds)
        if args.scenario in ("all", "max"):
            rates = [float(r) for r in args.rates.split(",")]
            results += max_rate(setup, rates, args.step_seconds, args.workers)
    print(f"\n{os.cpu_count()} CPUs, python {sys.version.split()[0]}, grpcio {grpc.__version__}")
    for result in results:
        print(result.line())
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
