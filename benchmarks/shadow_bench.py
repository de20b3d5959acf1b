"""What a shadow costs the active version: support_bot's p95 at its benchmark rate, shadow off and on.

Two `palisade serve` processes on one copy of the shipped rulesets plus support_bot 0.9.9 (the same
rules: a shadow exactly as costly as the active version); one serves 1.0.0 alone, the other 1.0.0
with 0.9.9 as its shadow, both set with `palisade rollout` (support_bot.gate.toml requires approvals:
1.0.0, the first version picked, goes live on its activation record). `palisade
bench` drives each in turn, alternating, so that both see the same machine. ``--baseline DIR`` (a
copy of earlier code: git archive REV | tar -x -C DIR) adds a third server, the shadow on with that
code, to compare a change side by side. Run: python -m benchmarks.shadow_bench [--rounds 3]
[--baseline DIR]. Results: benchmarks/SHADOW.md.
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
    parser.add_argument("--rounds", type=int, default=3, help="rounds: each side once, each first in turn")
    parser.add_argument("--rate", type=float, default=10.0, help="Checks per second (BUDGETS.md's rate)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per run")
    parser.add_argument("--baseline", help="earlier code (a source tree): also serve the shadow with it")
    args = parser.parse_args()
    sides = ["off", "on"] + (["baseline"] if args.baseline else [])
    with tempfile.TemporaryDirectory(prefix="palisade-shadow-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        rulesets = prepared(folder)
        for side in sides:
            _rollout(rulesets, folder / side, "activate", "1.0.0")
            if side != "off":
                _rollout(rulesets, folder / side, "shadow", "0.9.9")
        targets = {
            side: stack.enter_context(server_process(_server(side, rulesets, folder, args.baseline))).target
            for side in sides
        }
        p95: dict[str, list[float]] = {side: [] for side in sides}
        for n in range(args.rounds):
            for side in sides[n % len(sides) :] + sides[: n % len(sides)]:  # each first in turn
                entry = bench(targets[side], rulesets, args, folder / f"{side}-{n}.json")
                p95[side].append(entry["p95_ms"])
                print(f"round {n + 1} shadow {side}: p95 {entry['p95_ms']:.1f} ms", flush=True)
        shadowed = {side: _shadowed(folder / side) for side in sides[1:]}
    medians = {side: statistics.median(values) for side, values in p95.items()}
    ratios = {side: round(medians[side] / medians["off"], 3) for side in sides[1:]}
    report = {"machine": machine(), "args": vars(args), "p95_ms": p95, "median_ms": medians,
              "ratio_to_off": ratios, "shadow": shadowed}  # fmt: skip
    print(json.dumps(report, indent=2))
    return 0


def _server(side: str, rulesets: Path, folder: Path, baseline: str | None) -> list[str]:
    """The `palisade serve` command of one side: the baseline's runs the earlier code (from its folder,
    which `python -m` puts first on the path)."""
    command = palisade_server(str(rulesets), str(folder / side))
    if side != "baseline" or baseline is None:
        return command
    source = str(Path(baseline).resolve())
    return ["env", "-C", source, f"PYTHONPATH={source}", *command]


def _rollout(rulesets: Path, data_dir: Path, step: str, version: str) -> None:
    """`palisade rollout STEP` of support_bot VERSION in ``data_dir`` (1.0.0 is the first version
    picked, which its gate file's require_approval lets go live; its record vouches for it)."""
    where = ["--rulesets", str(rulesets), "--data-dir", str(data_dir)]
    command = [sys.executable, "-m", "engine.cli.main", "rollout", step, "--ruleset", RULESET,
               "--version", version, "--actor", "shadow_bench", *where]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def _shadowed(data_dir: Path) -> dict[str, Any]:
    """The shadow report of a run with the shadow on (how many Checks it evaluated, at what rate)."""
    command = [sys.executable, "-m", "engine.cli.main", "shadow", "report", "--ruleset", RULESET,
               "--data-dir", str(data_dir), "--format", "json"]  # fmt: skip
    report: dict[str, Any] = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
    return {k: report[k] for k in ("offered", "shadowed", "shadowed_share", "sample_rate_now", "differing")}


if __name__ == "__main__":
    sys.exit(main())
