"""What a shadow costs in CPU, and when it runs: a Guard in process, support_bot with 0.9.9 as shadow.

No latencies, so it may run on a busy machine: CPU seconds a Check by thread (/proc/self/task), the
detector cache's misses (the shadow should add none), and how long after its Check ended the shadow
started evaluating. Run: python -m benchmarks.shadow_cpu [--checks 300]; against earlier code, from
a copy of it: env -C DIR PYTHONPATH=DIR python PATH/TO/benchmarks/shadow_cpu.py. Results:
benchmarks/SHADOW.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.shadow_bench import RULESET, prepared
from engine.cli.bench.workload import generate, load_scenario
from engine.config import ServeConfig
from engine.guard import Guard
from engine.runtime.decision import Decision
from engine.runtime.request import Request, request_from_dict
from engine.runtime.rollout import Plan, rollout_path, save_plans

GAP_S = 0.01  # between Checks: the shadow of one is done before the next


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's threads, by name (numbered pool threads together)."""
    names = {t.native_id: t.name.rstrip("0123456789_-") for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = defaultdict(float)
    for task in os.listdir("/proc/self/task"):  # utime + stime, fields 14 and 15 of stat(5)
        try:
            stat = Path(f"/proc/self/task/{task}/stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        used[names.get(int(task), "(native)")] += (int(fields[11]) + int(fields[12])) / tick
    return used


def measure(side: str, folder: Path, rulesets: Path, requests: list[Request]) -> dict[str, Any]:
    """One side (shadow "off" or "on"): Check each of ``requests`` on an empty detector cache (its
    misses counted), then each again (cached, as in shadow_bench's later rounds: CPU counted)."""
    save_plans(
        rollout_path(folder / side), {RULESET: Plan(shadow="0.9.9" if side == "on" else "", revision=1)}
    )
    with Guard.open(ServeConfig(rulesets=str(rulesets), data_dir=str(folder / side))) as guard:
        started: list[float] = []
        shadow = guard.registry.shadow(RULESET)
        if shadow is not None:
            evaluate = shadow.evaluate

            def timed(request: Request, timeout_s: float | None = None) -> Decision:
                started.append(time.monotonic())
                return evaluate(request, timeout_s=timeout_s)

            shadow.evaluate = timed  # type: ignore[method-assign]
        cache = guard.registry.get(RULESET, "1.0.0").cache
        assert cache is not None, "support_bot's detectors are cached"
        cache.clear()  # the process's cache, shared with the previous sides
        misses = cache.stats().misses
        for request in requests:
            guard.check(RULESET, request)
        time.sleep(0.5)
        misses = cache.stats().misses - misses
        before, ended = thread_cpu(), []
        started.clear()
        for request in requests:
            guard.check(RULESET, request)
            ended.append(time.monotonic())
            time.sleep(GAP_S)
        time.sleep(0.3)
        used = {name: seconds - before.get(name, 0.0) for name, seconds in thread_cpu().items()}
    gaps = [(s - e) * 1000 for s, e in zip(started, ended, strict=True)] if started else []
    per_check = {name: round(seconds / len(requests) * 1000, 3) for name, seconds in sorted(used.items())}
    return {"side": side, "cpu_ms_per_check": per_check, "total_ms": round(sum(per_check.values()), 3),
            "cache_misses_when_new": misses,
            "shadow_start_after_check_ms": _spread(gaps)}  # fmt: skip


def _spread(gaps: list[float]) -> dict[str, float] | None:
    if not gaps:
        return None
    return {"min": round(min(gaps), 2), "median": round(statistics.median(gaps), 2),
            "max": round(max(gaps), 2), "within_1ms": sum(g < 1 for g in gaps), "of": len(gaps)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=300, help="Checks a side")
    parser.add_argument("--pairs", type=int, default=2, help="off/on pairs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="palisade-shadow-cpu-") as tmp:
        folder = Path(tmp)
        rulesets = prepared(folder)
        scenario = load_scenario(rulesets / f"{RULESET}.scenario.toml")
        requests = [request_from_dict(r) for r in generate(scenario, args.checks).requests]
        for n in range(args.pairs * 2):
            side = ("off", "on")[n % 2]
            print(json.dumps(measure(side, folder / str(n), rulesets, requests)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
