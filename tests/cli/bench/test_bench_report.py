"""Bench reports and the gate's verdict, on made-up samples (no timing), and /proc readings."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

from engine.cli.bench.loadgen import Sample
from engine.cli.bench.procstat import descendants, usage
from engine.cli.bench.report import Run, Stats, combine, measure, median_stats, stats
from engine.cli.bench.runner import Result, Subject
from engine.cli.bench.workload import load_scenario
from engine.protocol.wire import pb

ROOT = Path(__file__).resolve().parents[3]


def _reply(outcome: int, detector_us: dict[str, float]) -> bytes:
    response = pb.CheckResponse(outcome=outcome, timings=pb.Timings(detector_us=detector_us))
    return response.SerializeToString()


def test_percentiles_are_nearest_rank() -> None:
    s = stats(float(x) for x in range(1, 1001))
    assert (s.count, s.p50, s.p90, s.p95, s.p99, s.p999, s.max) == (1000, 500, 900, 950, 990, 999, 1000)
    assert math.isnan(stats([]).p95)


def test_medians_over_repetitions_and_counts_added() -> None:
    runs = [Stats(10, 1, 2, p95, 4, 5, 6) for p95 in (3.0, 9.0, 4.0)]
    assert median_stats(runs) == Stats(30, 1, 2, 4.0, 4, 5, 6)


def test_a_phase_is_reported_per_outcome_mix_entry_and_detector() -> None:
    allow, block = _reply(pb.OUTCOME_ALLOW, {"pii(content)": 800.0}), _reply(pb.OUTCOME_BLOCK, {})
    samples = [
        Sample(0, 0.002, 0.0, "OK", allow),
        Sample(1, 0.004, 0.0, "OK", block),
        Sample(2, 5.0, 0.0, "DEADLINE_EXCEEDED", b""),
    ]
    run = measure(samples, ["chat", "doc"], rate=10.0, first=0)
    assert run.sent == 3 and run.errors == {"DEADLINE_EXCEEDED": 1}
    assert run.latency.count == 2 and run.latency.max == 4.0
    assert {k: v.count for k, v in run.outcomes.items()} == {"allow": 1, "block": 1}
    assert {k: v.max for k, v in run.mix.items()} == {"chat": 2.0, "doc": 4.0}
    assert run.detectors["pii(content)"].p50 == 0.8
    twice = combine([run, run])
    assert twice.sent == 6 and twice.errors == {"DEADLINE_EXCEEDED": 2} and twice.latency.p95 == 4.0


def _result(p95: float, budget_us: int, errors: dict[str, int] | None = None) -> Result:
    scenario = load_scenario(ROOT / "rulesets" / "support_bot.scenario.toml")
    run = Run(100.0, 1000, 100.0, 0.1, Stats(1000, 1, 2, p95, 4, 5, 6), errors or {}, 0, {}, {}, {})
    return Result(Subject("support_bot", "rulesets/support_bot.pal", budget_us, scenario), run, [run])


def test_the_gate_names_ruleset_budget_and_measured_p95() -> None:
    assert _result(4.9, 5000).failures() == []
    (message,) = _result(5.1, 5000).failures()
    assert message.startswith("support_bot: p95 5.10 ms is over its budget of p95 5ms")
    assert _result(math.nan, 5000).failures()  # no reply at all is no pass
    assert _result(99.0, 0).failures() == []  # no budget declared: reported, not gated


def test_failed_calls_fail_the_gate() -> None:
    (message,) = _result(1.0, 5000, {"UNAVAILABLE": 3}).failures()
    assert message == "support_bot: 3 of 1000 calls failed (UNAVAILABLE 3)"


def test_usage_covers_a_process_and_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in descendants(os.getpid())
        mine = usage(os.getpid())
        assert mine.rss_mib > usage(child.pid).rss_mib > 0
        assert mine.peak_rss_mib >= mine.rss_mib and mine.cpu_s > 0
    finally:
        child.kill()
        child.wait()
