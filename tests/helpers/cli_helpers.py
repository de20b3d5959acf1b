"""Running this checkout's `palisade` commands from tests, and reading what `palisade audit query` prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def palisade(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a `palisade` command (this checkout's) and return what it printed."""
    command = [sys.executable, "-m", "engine.cli.main", *args]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def audit_query(data_dir: Path, *filters: str) -> list[dict[str, Any]]:
    """The records `palisade audit query --data-dir DATA_DIR FILTERS...` prints."""
    done = palisade("audit", "query", "--data-dir", str(data_dir), *filters)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]
