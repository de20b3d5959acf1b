"""What a shadow costs the active version: support_bot's p95 at its benchmark rate, shadow off and on.

Two `palisade serve` processes on one copy of the shipped rulesets plus support_bot 0.9.9 (the same
rules: a shadow exactly as costly as the active version); one serves 1.0.0 alone, the other 1.0.0
with 0.9.9 as its shadow (data/rollout.json). 1.0.0 answers as the highest version, so that the plans
name no active version (one would need an approval on its hash: support_bot.gate.toml). `palisade
bench` drives each in turn, alternating, so that both see the same machine. Run: python -m
benchmarks.shadow_bench [--rounds 3]. Results: benchmarks/SHADOW.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from engine.cli.bench.loadgen import palisade_server, server_process
from engine.cli.bench.procstat import machine
from engine.runtime.rollout import Plan, rollout_path, save_plans

ROOT = Path(__file__).resolve().parents[1]
RULESET = "support_bot"


def prepared(folder: Path) -> Path:
    """The shipped rulesets and a support_bot 0.9.9 of the same rules."""
    rulesets = folder / "rulesets"
    shutil.copytree(ROOT / "rulesets", rulesets)
    source = (rulesets / f"{RULESET}.pal").read_text(encoding="utf-8")
    (rulesets / f"{RULESET}@0.9.9.pal").write_text(source.replace('version "1.0.0"', 'version "0.9.9"'))
    return rulesets


def bench(target: str, rulesets: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One `palisade bench` run against ``target``: support_bot's report entry."""
    command = [
        sys.executable, "-m", "engine.cli.main", "bench", "--rulesets", str(rulesets), "--target", target,
        "--scenario", str(rulesets / f"{RULESET}.scenario.toml"), "--rate", str(args.rate),
        "--duration", str(args.duration), "--warmup", "3", "--repeat", "1", "--json", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
    entry: dict[str, Any] = json.loads(out.read_text())["rulesets"][0]
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs, alternating")
    parser.add_argument("--rate", type=float, default=10.0, help="Checks per second (BUDGETS.md's rate)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="palisade-shadow-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        rulesets = prepared(folder)
        save_plans(rollout_path(folder / "on"), {RULESET: Plan(shadow="0.9.9", revision=1)})
        save_plans(rollout_path(folder / "off"), {RULESET: Plan(revision=1)})
        targets = {
            side: stack.enter_context(
                server_process(palisade_server(str(rulesets), str(folder / side)))
            ).target
            for side in ("off", "on")
        }
        p95: dict[str, list[float]] = {"off": [], "on": []}
        for n in range(args.rounds):
            for side in ("off", "on") if n % 2 == 0 else ("on", "off"):
                entry = bench(targets[side], rulesets, args, folder / f"{side}-{n}.json")
                p95[side].append(entry["p95_ms"])
                print(f"round {n + 1} shadow {side}: p95 {entry['p95_ms']:.1f} ms", flush=True)
        shadowed = _shadowed(folder / "on")
    off, on = statistics.median(p95["off"]), statistics.median(p95["on"])
    report = {"machine": machine(), "args": vars(args), "p95_ms": p95, "median_off": off, "median_on": on,
              "ratio": round(on / off, 3), "shadow": shadowed}  # fmt: skip
    print(json.dumps(report, indent=2))
    return 0


def _shadowed(data_dir: Path) -> dict[str, Any]:
    """The shadow report of the run with the shadow on (how many Checks it evaluated, at what rate)."""
    command = [sys.executable, "-m", "engine.cli.main", "shadow", "report", "--ruleset", RULESET,
               "--data-dir", str(data_dir), "--format", "json"]  # fmt: skip
    report: dict[str, Any] = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
    return {k: report[k] for k in ("offered", "shadowed", "shadowed_share", "sample_rate_now", "differing")}


if __name__ == "__main__":
    sys.exit(main())
