"""Served latency under overload: `palisade serve` driven open loop at several rates, p99 and shed share."""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.cli.bench.loadgen import LoadGenerators, Sample, percentile
from engine.cli.bench.runner import served
from engine.cli.bench.workload import generate, load_scenario

HERE = Path(__file__).resolve().parent
RULESETS = HERE / "grpc_rulesets"
SCENARIO = HERE / "scenarios" / "grpc_bench.toml"
SHED = "RESOURCE_EXHAUSTED"


@dataclass(frozen=True, slots=True)
class Row:
    """One rate's phase; latencies in ms of the calls served."""

    rate: float
    sent: int
    served: int
    shed_pct: float
    other: dict[str, int]  # failures other than shedding, by status name
    p50_ms: float
    p99_ms: float
    max_ms: float
    sent_p99_ms: float  # from the actual send instead: what the server and the wire alone add
    send_lag_p99_ms: float  # how late the load generator itself sent (part of every latency)

    def line(self) -> str:
        other = ", ".join(f"{k} {v}" for k, v in sorted(self.other.items())) or "0"
        return (
            f"| {self.rate:,.0f}/s | {self.sent:,} | {self.served:,} | {self.shed_pct:.1f} % | {other} "
            f"| {self.p50_ms:.2f} | **{self.p99_ms:.2f}** | {self.max_ms:.1f} | {self.sent_p99_ms:.2f} "
            f"| {self.send_lag_p99_ms:.2f} |"
        )


HEADER = (
    "| rate | sent | served | shed | other errors | served p50 | served p99 | max | p99 from send "
    "| send lag p99 |\n| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
)


def row(rate: float, samples: Sequence[Sample]) -> Row:
    codes = Counter(s.code for s in samples)
    served = [s for s in samples if s.code == "OK"]
    ok = sorted(s.latency_s * 1000 for s in served)
    other = {code: n for code, n in codes.items() if code not in ("OK", SHED)}
    return Row(
        rate=rate,
        sent=len(samples),
        served=len(ok),
        shed_pct=100 * codes[SHED] / len(samples) if samples else math.nan,
        other=other,
        p50_ms=percentile(ok, 50),
        p99_ms=percentile(ok, 99),
        max_ms=ok[-1] if ok else math.nan,
        sent_p99_ms=percentile(sorted((s.latency_s - s.lag_s) * 1000 for s in served), 99),
        send_lag_p99_ms=percentile(sorted(s.lag_s for s in samples), 99) * 1000,
    )


def overload(
    rates: Sequence[float],
    *,
    rulesets: str | Path = RULESETS,
    scenario: str | Path = SCENARIO,
    duration: float = 10.0,
    warmup: float = 2.0,
    config: str | None = None,
    processes: int = 2,
    senders: int = 64,
) -> list[Row]:
    """Start `palisade serve` (one worker) on ``rulesets``, warm it up at ``rates[0]``, then drive it
    for ``duration`` seconds at each rate in turn; one row per rate."""
    counts = [math.ceil(rate * duration) for rate in rates]
    warm = math.ceil(rates[0] * warmup)
    workload = generate(load_scenario(scenario), warm + sum(counts))
    rows = []
    with (
        served(str(rulesets), config=config) as (target, _),
        LoadGenerators(target, processes=processes, senders=senders) as generators,
    ):
        generators.load(workload.encoded)
        generators.run(rates[0], 0, warm)
        first = warm
        for rate, count in zip(rates, counts, strict=True):
            rows.append(row(rate, generators.run(rate, first, count)))
            first += count
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """python -m benchmarks.overload --rates 300,1000,3900 [--config FILE]: one row per rate. Each rate
    sends requests not sent before, after a warm-up at the first; latencies are of the calls served
    (OK), from each arrival's scheduled time (and, to tell the server from a lagging load generator,
    from its actual send); `shed` is the share refused with RESOURCE_EXHAUSTED, `other` any other
    failure by status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="300,1000,3900", help="Checks per second, comma separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds at each rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds at the first rate, not counted")
    parser.add_argument("--rulesets", default=str(RULESETS))
    parser.add_argument("--scenario", default=str(SCENARIO))
    parser.add_argument("--config", help="TOML settings for the server (see docs/configuration.md)")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--senders", type=int, default=64, help="sender threads per process")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    rows = overload(
        rates,
        rulesets=args.rulesets,
        scenario=args.scenario,
        duration=args.duration,
        warmup=args.warmup,
        config=args.config,
        processes=args.processes,
        senders=args.senders,
    )
    print(HEADER)
    for each in rows:
        print(each.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
