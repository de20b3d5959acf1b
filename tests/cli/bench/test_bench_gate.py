"""The bench gate fails a ruleset whose detector is slower than its budget, naming ruleset, budget, p95."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def test_the_gate_fails_a_ruleset_slower_than_its_budget(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    command = [
        sys.executable, "-m", "engine.cli.main", "bench", "--rulesets", str(HERE / "rulesets"),
        "--scenario", str(HERE / "slow_budget.toml"), "--rate", "20", "--duration", "2",
        "--warmup", "0.5", "--repeat", "1", "--json", str(report),
    ]  # fmt: skip
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    found = re.search(r"FAIL slow_budget: p95 (\d+\.\d+) ms is over its budget of p95 3ms", done.stderr)
    assert found, done.stderr
    assert float(found.group(1)) > 3.0
    data = json.loads(report.read_text())
    assert data["passed"] is False
    (ruleset,) = data["rulesets"]
    assert ruleset["budget_p95_ms"] == 3.0
    assert ruleset["median"]["errors"] == {}
    assert set(ruleset["median"]["detectors"]) == {"account_number(content)"}
