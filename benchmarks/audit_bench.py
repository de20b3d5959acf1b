"""Audit writer benchmark: records per second through the group-committing writer, sync and async.

    .venv/bin/python -m benchmarks.audit_bench                 # a table
    .venv/bin/python -m benchmarks.audit_bench --json          # the same numbers as JSON
    .venv/bin/python -m benchmarks.audit_bench --quick         # a short smoke run

Each run opens a fresh log in a new directory under --dir (default: the system temp directory; it
must be on the disk under test, not a tmpfs, for sync numbers to mean anything). T threads append
real decisions (the three bench20 cases, evaluated once beforehand) for --seconds; records per
second is records appended over the time from the start until the last append returned. In sync
mode every append returns only after its transaction is fsynced; the writer's counters give the
transactions (one fsync each in sync mode) and so the records per fsync. "record" is the time to
build one record (digests and canonical JSON) in the calling thread, and "fsync" the time of one
plain 4 KiB write + fsync on the same disk, for scale.

The second table is latency at a fixed arrival rate (--rate, open loop: arrivals are scheduled at
i / rate and handed to a pool of --pool threads, like a server's handler threads): the time from
each scheduled arrival until its append returned, p50/p95/p99, in sync and in async mode. Their p95
difference is what sync durability adds to a Check at that rate (the record build is in both).

This is a benchmark, not a test: nothing here asserts a time; the targets are printed beside.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.evaluator_bench import RULESETS, load_cases, machine
from dsl.compiler import compile_file
from engine.audit import AuditConfig, AuditLog
from engine.audit.keys import Digester
from engine.audit.record import build_entry
from engine.runtime.decision import Decision
from engine.runtime.evaluator import Evaluator
from engine.runtime.ids import new_id
from engine.runtime.request import Request, request_from_dict

TARGET_PER_S = 5000.0
TARGET_ADDED_P95_MS = 0.5
Sample = tuple[Decision, Request]


@dataclass(frozen=True, slots=True)
class Run:
    durability: str
    threads: int
    records: int
    seconds: float
    transactions: int

    @property
    def per_s(self) -> float:
        return self.records / self.seconds

    @property
    def per_transaction(self) -> float:
        return self.records / max(self.transactions, 1)


def samples() -> list[Sample]:
    evaluator = Evaluator(compile_file(os.path.join(RULESETS, "bench20.pal")))
    out = []
    for spec in load_cases("bench20.requests.json").values():
        request = request_from_dict(spec["request"])
        out.append((evaluator.evaluate(request), request))
    return out


def run_once(base: str, durability: str, threads: int, seconds: float, cases: list[Sample]) -> Run:
    directory = tempfile.mkdtemp(prefix="audit-bench-", dir=base)
    try:
        log = AuditLog.open(directory, AuditConfig.model_validate({"durability": durability}))
        counts = [0] * threads
        start = time.perf_counter()
        stop = start + seconds

        def work(slot: int) -> None:
            n = 0
            while time.perf_counter() < stop:
                decision, request = cases[n % len(cases)]
                log.append(decision, request, new_id())
                n += 1
            counts[slot] = n

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        stats = log.stats
        log.close()
        written = log.stats.records
        if written != sum(counts):
            raise SystemExit(f"the log holds {written} records, {sum(counts)} were appended")
        return Run(durability, threads, sum(counts), elapsed, stats.transactions)
    finally:
        shutil.rmtree(directory)


@dataclass(frozen=True, slots=True)
class Latency:
    durability: str
    rate: float
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


def latency_at_rate(
    base: str, durability: str, cases: list[Sample], *, rate: float, seconds: float, pool: int
) -> Latency:
    directory = tempfile.mkdtemp(prefix="audit-bench-", dir=base)
    try:
        log = AuditLog.open(directory, AuditConfig.model_validate({"durability": durability}))
        latencies: list[float] = []

        def one(n: int, scheduled: float) -> None:
            decision, request = cases[n % len(cases)]
            log.append(decision, request, new_id())
            latencies.append(time.perf_counter() - scheduled)

        with ThreadPoolExecutor(pool) as executor:
            start = time.perf_counter()
            for n in range(int(rate * seconds)):
                scheduled = start + n / rate
                time.sleep(max(scheduled - time.perf_counter(), 0.0))
                executor.submit(one, n, scheduled)
        log.close()
        ordered = sorted(latencies)
        p50, p95, p99 = (
            ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1e3 for q in (0.5, 0.95, 0.99)
        )
        return Latency(durability, rate, len(ordered), p50, p95, p99)
    finally:
        shutil.rmtree(directory)


def record_us(cases: list[Sample], iterations: int) -> float:
    digester = Digester(os.urandom(32))
    start = time.perf_counter()
    for n in range(iterations):
        decision, request = cases[n % len(cases)]
        build_entry(decision, request, new_id(), digester)
    return (time.perf_counter() - start) / iterations * 1e6


def fsync_us(base: str, iterations: int) -> float:
    fd, path = tempfile.mkstemp(prefix="audit-bench-fsync-", dir=base)
    try:
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e6
    finally:
        os.close(fd)
        os.unlink(path)


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.per_s)[len(runs) // 2]


def render(
    info: dict[str, Any],
    rows: list[Run],
    latencies: list[Latency],
    *,
    record: float,
    fsync: float,
    repeats: int,
) -> str:
    lines = [
        f"machine: {info['cpu']}, nproc {info['nproc']}, Python {info['python']}, {info['date']}",
        f"record build {record:.1f} us; one 4 KiB write+fsync {fsync:.0f} us (median); "
        f"each row: the median of {repeats} run(s)",
        "",
        f"{'mode':<6} {'threads':>7} {'records':>8} {'records/s':>10} {'txns':>7} {'rec/txn':>8}  target",
    ]
    for r in rows:
        target = (
            ""
            if r.durability != "sync"
            else ("ok" if r.per_s >= TARGET_PER_S else "BELOW") + f" {TARGET_PER_S:g}/s"
        )
        lines.append(
            f"{r.durability:<6} {r.threads:>7} {r.records:>8} {r.per_s:>10.0f} {r.transactions:>7} "
            f"{r.per_transaction:>8.1f}  {target}"
        )
    lines += ["", f"{'mode':<6} {'rate/s':>7} {'appends':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"]
    lines += [
        f"{x.durability:<6} {x.rate:>7g} {x.count:>8} {x.p50_ms:>8.2f} {x.p95_ms:>8.2f} {x.p99_ms:>8.2f}"
        for x in latencies
    ]
    added = latencies[0].p95_ms - latencies[1].p95_ms
    verdict = "ok" if added <= TARGET_ADDED_P95_MS else "ABOVE"
    lines.append(
        f"sync adds {added:.2f} ms to p95 at {latencies[0].rate:g}/s: {verdict} {TARGET_ADDED_P95_MS} ms"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit_bench", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to put the logs (a real disk)")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each run appends")
    parser.add_argument("--repeats", type=int, default=3, help="runs per row (the median is shown)")
    parser.add_argument("--threads", default="1,4,16,64", help="submitting threads, comma separated")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="arrivals per second for the latency table"
    )
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="how long each latency run lasts")
    parser.add_argument("--pool", type=int, default=16, help="threads serving arrivals (a server's handlers)")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    args = parser.parse_args(argv)
    seconds, repeats = (0.3, 1) if args.quick else (args.seconds, args.repeats)
    rate_seconds = 0.5 if args.quick else args.rate_seconds
    cases = samples()
    plan = [("sync", int(t)) for t in args.threads.split(",")] + [("async", int(args.threads.split(",")[-1]))]
    rows = [median_run([run_once(args.dir, d, t, seconds, cases) for _ in range(repeats)]) for d, t in plan]
    latencies = [
        latency_at_rate(args.dir, d, cases, rate=args.rate, seconds=rate_seconds, pool=args.pool)
        for d in ("sync", "async")
    ]
    record, fsync = record_us(cases, 2000), fsync_us(args.dir, 50)
    info = machine() | {"dir": os.path.abspath(args.dir)}
    if args.json:
        data = {
            "machine": info,
            "record_us": record,
            "fsync_us": fsync,
            "runs": [asdict(r) for r in rows],
            "latency": [asdict(x) for x in latencies],
        }
        print(json.dumps(data, indent=2))
    else:
        print(render(info, rows, latencies, record=record, fsync=fsync, repeats=repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
