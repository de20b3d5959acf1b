"""gRPC Check latency over loopback, the client in its own process: one caller, open loop, max rate.

Run: python -m benchmarks.grpc_bench [--scenario all|single|open|max]. Results: benchmarks/GRPC.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import grpc

from engine.request import request_from_dict
from engine.server.request_codec import request_to_proto
from engine.server.wire import CHECK_METHOD

ROOT = Path(__file__).resolve().parents[1]
RULESETS = Path(__file__).resolve().parent / "grpc_rulesets"
READY = "palisade: ready on "
CALL_TIMEOUT_S = 5.0
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


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(q / 100 * len(sorted_values)) - 1, 0)
    return sorted_values[rank]


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


# Servers, each in its own process


@contextmanager
def server_process(command: list[str]) -> Iterator[str]:
    """Start a server; yield its HOST:PORT once it prints the ready line; SIGTERM it afterwards."""
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith(READY):
                threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
                yield line.split()[3]
                break
        else:
            raise RuntimeError(f"server exited with {proc.wait()} before it was ready")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def palisade_server(workers: int, data_dir: str) -> list[str]:
    return [
        sys.executable, "-m", "engine.cli", "serve", "--rulesets", str(RULESETS),
        "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--workers", str(workers),
    ]  # fmt: skip


def noop_server() -> list[str]:
    return [sys.executable, "-m", "benchmarks.grpc_noop", "--listen", "127.0.0.1:0"]


# Clients


@contextmanager
def callers(target: str, connections: int) -> Iterator[list[grpc.UnaryUnaryMultiCallable[bytes, bytes]]]:
    """Raw-bytes Check callables, one TCP connection each (so SO_REUSEPORT can spread them)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(target, options=options) for _ in range(connections)]
    try:
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield [channel.unary_unary(CHECK_METHOD, None, None) for channel in channels]  # raw bytes
    finally:
        for channel in channels:
            channel.close()


def closed_loop(name: str, call: grpc.UnaryUnaryMultiCallable[bytes, bytes], count: int) -> Result:
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


def open_loop(
    name: str,
    calls: list[grpc.UnaryUnaryMultiCallable[bytes, bytes]],
    rate: float,
    seconds: float,
    senders: int = SENDERS,
) -> Result:
    """Arrivals on a fixed schedule; each latency counts from its scheduled time, not its send time.

    Arrival i belongs to sender thread i % senders, which sleeps until the arrival's time and makes a
    blocking call (cheaper in grpcio than futures). A sender still busy with an earlier call sends
    late, and that lateness counts in the latency, so slow answers are not hidden.
    """
    requests = encoded_requests()
    count = int(rate * seconds)
    latencies: list[float | None] = [None] * count
    lags: list[float] = [0.0] * count
    start = time.perf_counter() + 0.05

    def send(first: int) -> None:
        call = calls[first % len(calls)]
        for i in range(first, count, senders):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            lags[i] = time.perf_counter() - scheduled
            try:
                call(requests[i % len(requests)], timeout=CALL_TIMEOUT_S)
            except grpc.RpcError:
                continue
            latencies[i] = time.perf_counter() - scheduled

    threads = [threading.Thread(target=send, args=(k,), daemon=True) for k in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [x for x in latencies if x is not None]
    result = summarise(name, rate, done, count - len(done), time.perf_counter() - start)
    return replace(result, send_lag_p99_ms=percentile(sorted(lags), 99) * 1000)


# Scenarios


def single(data_dir: str, count: int) -> list[Result]:
    results = []
    with server_process(noop_server()) as target, callers(target, 1) as (call,):
        results.append(closed_loop("no-op grpcio, 1 caller", call, count))
    with server_process(palisade_server(1, data_dir)) as target, callers(target, 1) as (call,):
        results.append(closed_loop("palisade, 1 caller", call, count))
    return results


def open_rate(data_dir: str, rate: float, seconds: float) -> list[Result]:
    results = []
    with server_process(noop_server()) as target, callers(target, 4) as calls:
        open_loop("warm-up", calls, rate, 1.0)
        results.append(open_loop("no-op grpcio, open loop", calls, rate, seconds))
    with server_process(palisade_server(1, data_dir)) as target, callers(target, 4) as calls:
        open_loop("warm-up", calls, rate, 1.0)
        results.append(open_loop("palisade, open loop", calls, rate, seconds))
    return results


def max_rate(data_dir: str, rates: list[float], seconds: float, workers: int) -> list[Result]:
    results = []
    with server_process(palisade_server(workers, data_dir)) as target, callers(target, 8) as calls:
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
    args = parser.parse_args(argv)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as data_dir:
        if args.scenario in ("all", "single"):
            results += single(data_dir, args.calls)
        if args.scenario in ("all", "open"):
            results += open_rate(data_dir, args.rate, args.seconds)
        if args.scenario in ("all", "max"):
            rates = [float(r) for r in args.rates.split(",")]
            results += max_rate(data_dir, rates, args.step_seconds, args.workers)
    print(f"\n{os.cpu_count()} CPUs, python {sys.version.split()[0]}, grpcio {grpc.__version__}")
    for result in results:
        print(result.line())
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
