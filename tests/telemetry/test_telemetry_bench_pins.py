"""telemetry_bench --pin: the server on a CPU of its own, the benchmark's threads on another, or why not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks.telemetry_bench import Pins, pins

TWO_CPUS = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
# Pins this child's threads, starts one more, and prints each thread's CPUs.
CHILD = """
import os, sys, threading
from benchmarks.telemetry_bench import Pins
threading.Thread(target=threading.Event().wait, daemon=True).start()  # a thread that exists before
Pins(int(sys.argv[1]), int(sys.argv[2])).pin_self()
threading.Thread(target=threading.Event().wait, daemon=True).start()  # and one started after
print(sorted({tuple(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")}))
"""


@TWO_CPUS
def test_the_server_command_runs_on_the_server_cpu_alone() -> None:
    pinned = pins()
    assert isinstance(pinned, Pins)
    assert pinned.generator != pinned.server
    report = "import os; print(sorted(os.sched_getaffinity(0)))"
    command = pinned.server_command([sys.executable, "-c", report])
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == f"[{pinned.server}]"


@TWO_CPUS
def test_pin_self_moves_every_thread_onto_the_generator_cpu() -> None:
    pinned = pins()
    assert isinstance(pinned, Pins)
    args = [str(pinned.generator), str(pinned.server)]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == f"[({pinned.generator},)]"


def test_pin_on_one_cpu_is_refused_with_the_reason() -> None:
    command = ["taskset", "--cpu-list", str(min(os.sched_getaffinity(0)))]
    command += [sys.executable, "-m", "benchmarks.telemetry_bench", "--pin"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--pin needs 2 CPUs" in done.stderr
