"""Latency reports of open-loop runs: percentiles overall, per outcome, mix entry and detector."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

from engine.cli.bench.loadgen import Sample, elapsed_s, percentile
from engine.cli.bench.procstat import Usage
from engine.protocol.wire import pb

QUANTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True, slots=True)
class Stats:
    """Milliseconds: nearest-rank percentiles and the maximum of ``count`` values."""

    count: int
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    max: float


def stats(values_ms: Iterable[float]) -> Stats:
    ordered = sorted(values_ms)
    p50, p90, p95, p99, p999 = (percentile(ordered, q) for q in QUANTILES)
    return Stats(len(ordered), p50, p90, p95, p99, p999, ordered[-1] if ordered else math.nan)


def median_stats(runs: Sequence[Stats]) -> Stats:
    """Each percentile's median over the runs that had values; the counts added up."""
    counted = [r for r in runs if r.count] or list(runs)

    def median(name: str) -> float:
        return float(statistics.median(getattr(r, name) for r in counted))

    p50, p90, p95, p99, p999, top = (median(f.name) for f in fields(Stats)[1:])
    return Stats(sum(r.count for r in runs), p50, p90, p95, p99, p999, top)


@dataclass(frozen=True, slots=True)
class ServerLoad:
    cores: float  # CPU seconds per second of the run, the server's processes together
    rss_mib: float
    peak_rss_mib: float


@dataclass(frozen=True, slots=True)
class Run:
    """One measured phase, or the medians of several (counts added up)."""

    rate: float
    sent: int
    achieved_rps: float  # successful replies per second
    send_lag_p99_ms: float  # how late the load generator itself sent: part of every latency
    latency: Stats  # successful calls, from the scheduled send time
    errors: dict[str, int]  # gRPC status name: calls
    evaluation_errors: int  # decisions in which a detector or rule failed (the error policy applied)
    outcomes: dict[str, Stats]
    mix: dict[str, Stats]  # by scenario entry
    detectors: dict[str, Stats]  # the detector's own time in the server (the response's timings)
    server: ServerLoad | None = None


def server_load(before: Usage, after: Usage, seconds: float) -> ServerLoad:
    return ServerLoad((after.cpu_s - before.cpu_s) / seconds, after.rss_mib, after.peak_rss_mib)


def _group(pairs: Iterable[tuple[str, float]]) -> dict[str, Stats]:
    grouped: dict[str, list[float]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return {key: stats(values) for key, values in sorted(grouped.items())}


def measure(samples: Sequence[Sample], names: Sequence[str], rate: float, first: int) -> Run:
    """The report of one phase; ``names[i % len(names)]`` is arrival i's scenario entry."""
    ok = [s for s in samples if s.code == "OK"]
    replies = [pb.CheckResponse.FromString(s.reply) for s in ok]
    latencies = [s.latency_s * 1000 for s in ok]
    outcomes = [pb.Outcome.Name(r.outcome).removeprefix("OUTCOME_").lower() for r in replies]
    wall = elapsed_s(samples, rate, first)
    return Run(
        rate=rate,
        sent=len(samples),
        achieved_rps=len(ok) / wall if wall else 0.0,
        send_lag_p99_ms=percentile(sorted(s.lag_s for s in samples), 99) * 1000,
        latency=stats(latencies),
        errors=dict(Counter(s.code for s in samples if s.code != "OK")),
        evaluation_errors=sum(bool(r.errors) for r in replies),
        outcomes=_group(zip(outcomes, latencies, strict=True)),
        mix=_group((names[s.arrival % len(names)], x) for s, x in zip(ok, latencies, strict=True)),
        detectors=_group((d, us / 1000) for r in replies for d, us in r.timings.detector_us.items()),
    )


def _median_groups(groups: Sequence[Mapping[str, Stats]]) -> dict[str, Stats]:
    keys = sorted({k for g in groups for k in g})
    return {k: median_stats([g[k] for g in groups if k in g]) for k in keys}


def combine(runs: Sequence[Run]) -> Run:
    """Medians over the repetitions; counts, errors and sends added up; the highest memory."""
    loads = [r.server for r in runs if r.server is not None]
    errors: Counter[str] = Counter()
    for run in runs:
        errors.update(run.errors)
    return Run(
        rate=runs[0].rate,
        sent=sum(r.sent for r in runs),
        achieved_rps=statistics.median(r.achieved_rps for r in runs),
        send_lag_p99_ms=statistics.median(r.send_lag_p99_ms for r in runs),
        latency=median_stats([r.latency for r in runs]),
        errors=dict(errors),
        evaluation_errors=sum(r.evaluation_errors for r in runs),
        outcomes=_median_groups([r.outcomes for r in runs]),
        mix=_median_groups([r.mix for r in runs]),
        detectors=_median_groups([r.detectors for r in runs]),
        server=ServerLoad(
            statistics.median(x.cores for x in loads),
            max(x.rss_mib for x in loads),
            max(x.peak_rss_mib for x in loads),
        )
        if loads
        else None,
    )


# Text


def stats_table(run: Run) -> list[str]:
    """The percentile table of a run: overall, then per outcome, mix entry and detector."""
    heads = "".join(f" {h:>7}" for h in ("count", "p50", "p90", "p95", "p99", "p99.9", "max"))
    rows = [f"  {'ms, from the scheduled send to the reply':<{_LABEL}}{heads}"]
    rows.append(_row("all calls", run.latency))
    sections = (
        ("by outcome", run.outcomes),
        ("by mix entry", run.mix),
        ("detector time in the server", run.detectors),
    )
    for title, groups in sections:
        rows.append(f"  {title}:")
        rows += [_row(f"  {k}", v) for k, v in groups.items()]
    return rows


_LABEL = 52


def _row(label: str, s: Stats) -> str:
    values = "".join(f" {v:>7.3f}" for v in (s.p50, s.p90, s.p95, s.p99, s.p999, s.max))
    return f"  {label[:_LABEL]:<{_LABEL}} {s.count:>7}{values}"


def summary_line(run: Run) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(run.errors.items())) or "none"
    line = (
        f"  sent {run.sent} at {run.rate:g}/s, achieved {run.achieved_rps:.1f}/s; errors: {errors}; "
        f"decisions with evaluation errors: {run.evaluation_errors}; "
        f"send lag p99 {run.send_lag_p99_ms:.2f} ms"
    )
    if run.server is not None:
        s = run.server
        line += f"\n  server: {s.cores:.2f} cores, RSS {s.rss_mib:.0f} MiB (peak {s.peak_rss_mib:.0f} MiB)"
    return line
