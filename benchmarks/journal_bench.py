"""Audit durability over gRPC, side by side: no-op floor, `sync`, `async`, `journal` at one rate.

    .venv/bin/python -m benchmarks.journal_bench [--rate 1000] [--duration 10] [--rounds 3]

Each round runs the no-op grpcio server and `palisade serve` once per durability mode, in turn, each
round starting one mode later than the last, on the gRPC floor's workload
(benchmarks/rulesets/twocond.pal, scenario twocond), open loop; each row is the median over the
rounds of each round's latency percentiles. The verdict is issue 23's target:
`journal` p95 within 1.3x of `async`. Results: benchmarks/AUDIT.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

from benchmarks.compare import ASYNC_AUDIT, HERE, LATENCY_HEADERS, bench_noop, bench_served, table
from benchmarks.grpc_bench import in_turn
from engine.cli.bench.runner import Options, Result

JOURNAL_AUDIT = HERE / "journal_audit.toml"
RULESETS, SCENARIO = HERE / "rulesets", "twocond"  # the gRPC floor's workload (benchmarks/compare.py)
TARGET_RATIO = 1.3
MODES: dict[str, Callable[[Options], Result]] = {
    "no-op grpcio server": lambda o: bench_noop(SCENARIO, o),
    "audit `sync`": lambda o: bench_served(RULESETS, SCENARIO, o),
    "audit `async`": lambda o: bench_served(RULESETS, SCENARIO, o, ASYNC_AUDIT),
    "audit `journal`": lambda o: bench_served(RULESETS, SCENARIO, o, JOURNAL_AUDIT),
}
QUANTILES = ("p50", "p90", "p95", "p99", "max")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.journal_bench", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    options = Options(args.rate, args.duration, args.warmup, 1)
    load = os.getloadavg()
    runs: dict[str, list[Result]] = {mode: [] for mode in MODES}
    for round_ in range(args.rounds):
        for mode in in_turn(list(MODES), round_):
            runs[mode].append(MODES[mode](options))
    rows, p95 = [], {}
    for mode, results in runs.items():
        stats = [r.median.latency for r in results]
        values = [statistics.median(getattr(s, q) for s in stats) for q in QUANTILES]
        errors = sum(sum(r.median.errors.values()) for r in results)
        p95[mode] = values[2]
        rows.append([mode, f"{args.rate:g}/s", *values, errors, ""])
    ratio = p95["audit `journal`"] / p95["audit `async`"]
    verdict = "met" if ratio <= TARGET_RATIO else "not met"
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the start {load}")
    print("\n".join(table(LATENCY_HEADERS, rows)))
    floor = p95["no-op grpcio server"]
    print("\np95 / floor: " + ", ".join(f"{m} {v / floor:.2f}x" for m, v in p95.items()))
    print(f"journal p95 / async p95: {ratio:.2f}x (target <= {TARGET_RATIO}x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
