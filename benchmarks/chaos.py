"""Chaos: SIGKILL under load, a full disk, overload; answered decisions checked against the audit log.

    .venv/bin/python -m benchmarks.chaos [--rounds 3] [--seconds 2] [--skip overload]

Each SIGKILL round starts `palisade serve` (sync audit), drives it from several connections, kills
one process (a worker, the supervisor, or every process) and counts the decisions that were
answered but have no record. The full-disk round puts the data directory on a small tmpfs (root
only; skipped otherwise) and counts ALLOW answers without a record. The overload steps are
benchmarks/overload.py's. Results: docs/operations.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from engine.audit import AuditLog, AuditPaths
from engine.audit.journal import read_segment
from engine.audit.store import Store
from engine.client.guard_client import GuardClient, GuardError

ROOT = Path(__file__).resolve().parents[1]
READY = "palisade: ready on "
CALLERS = 6
TMPFS_SIZE = "1m"


@dataclass
class Answers:
    """What the callers were told: decision id and outcome of every answered Check."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    given: list[tuple[str, str]] = field(default_factory=list)
    refused: int = 0

    def add(self, decision_id: str, outcome: str) -> None:
        with self.lock:
            self.given.append((decision_id, outcome))

    @property
    def allowed(self) -> int:
        return sum(outcome == "ALLOW" for _, outcome in self.given)

    def refuse(self) -> None:
        with self.lock:
            self.refused += 1


@dataclass(frozen=True)
class Row:
    scenario: str
    answered: int
    allowed: int
    failed: int  # calls that got an error (the server killed, restarting, or refusing)
    unrecorded: int  # answered decisions with no audit record (ALLOW ones only, for the full disk)


@contextmanager
def serve(
    data_dir: Path, workers: int, rulesets: Path = ROOT / "rulesets", extra: Sequence[str] = ()
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`palisade serve` on ``rulesets`` (the shipped ones), with ``extra`` arguments, in its own
    process group; yields it and its address."""
    command = [sys.executable, "-m", "engine.cli.main", "serve", "--rulesets", str(rulesets)]
    command += ["--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--workers", str(workers), *extra]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith(READY):
                threading.Thread(target=proc.stderr.read, daemon=True).start()
                yield proc, line.split()[3]
                break
        else:
            raise RuntimeError(f"palisade serve exited with {proc.wait()} before it was ready")
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def drive(target: str, answers: Answers, stop: threading.Event, ruleset: str = "support_bot") -> None:
    """One caller: Checks back to back on one connection until ``stop`` (or the server is gone)."""
    with GuardClient(target, timeout=5) as client:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                result = client.check(ruleset=ruleset, stage="input", text=f"where is order {n}?")
            except GuardError:
                answers.refuse()
                continue
            answers.add(result.decision_id, result.outcome.name)


@contextmanager
def load(target: str, ruleset: str = "support_bot") -> Iterator[Answers]:
    answers, stop = Answers(), threading.Event()
    callers = [threading.Thread(target=drive, args=(target, answers, stop, ruleset)) for _ in range(CALLERS)]
    for caller in callers:
        caller.start()
    try:
        yield answers
    finally:
        stop.set()
        for caller in callers:
            caller.join(30)


def a_worker(pid: int) -> int:
    """A worker of the supervisor ``pid`` (a spawned child), or ``pid`` itself when it serves alone."""
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    return pid


def missing(data_dir: Path, ids: list[str]) -> int:
    """How many of ``ids`` the audit log in ``data_dir`` has no record of, in its store or in a
    journal (`journal` durability: the next start with room on the disk stores those)."""
    paths = AuditPaths.of(data_dir)
    journaled = {e.decision_id for p in paths.journal.glob("*.jnl") for e in read_segment(p, p.read_bytes())}
    store = Store.open_reader(paths.database)
    try:
        return sum(i not in journaled and store.find(i) is None for i in ids)
    finally:
        store.close()


def kill_round(workers: int, victim: str, seconds: float) -> Row:
    """Kill ``victim`` (worker, supervisor, all) under load; count answered decisions left unrecorded."""
    with tempfile.TemporaryDirectory(prefix="palisade-chaos-") as scratch:
        data_dir = Path(scratch)
        with serve(data_dir, workers) as (proc, target), load(target) as answers:
            time.sleep(seconds)
            if victim == "worker":
                os.kill(a_worker(proc.pid), signal.SIGKILL)
            elif victim == "supervisor":
                os.kill(proc.pid, signal.SIGKILL)
            else:
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.5)
        ids = [decision_id for decision_id, _ in answers.given]
        AuditLog.open(data_dir).close()  # as the next start finds it: what the journals held, stored
        lost = missing(data_dir, ids)
    return Row(f"SIGKILL {victim}, {workers} worker(s)", len(ids), answers.allowed, answers.refused, lost)


def full_disk_round(seconds: float) -> Row | None:
    """The data directory on a full tmpfs: every ALLOW answered must have its record. None: no mount."""
    with tempfile.TemporaryDirectory(prefix="palisade-chaos-disk-") as scratch:
        data_dir = Path(scratch)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(data_dir)],
            capture_output=True,
            check=False,
        )
        if mounted.returncode != 0:
            return None
        try:
            with serve(data_dir, 1) as (_, target), load(target) as answers:
                time.sleep(seconds)
            allowed = [decision_id for decision_id, outcome in answers.given if outcome == "ALLOW"]
            lost = missing(data_dir, allowed)
        finally:
            subprocess.run(["umount", "-l", str(data_dir)], check=False)
    return Row(f"full disk ({TMPFS_SIZE} tmpfs)", len(answers.given), len(allowed), answers.refused, lost)


def rows(rounds: int, seconds: float) -> Iterator[Row]:
    for _ in range(rounds):
        yield kill_round(1, "worker", seconds)
        yield kill_round(2, "worker", seconds)
        yield kill_round(2, "supervisor", seconds)
        yield kill_round(2, "all", seconds)
    disk = full_disk_round(seconds * 4)
    if disk is not None:
        yield disk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="SIGKILL rounds of each kind")
    parser.add_argument("--seconds", type=float, default=2.0, help="load before each kill")
    parser.add_argument("--skip", action="append", default=[], choices=["kill", "overload"])
    args = parser.parse_args(argv)
    print(f"{'scenario':36} {'answered':>9} {'ALLOW':>6} {'failed':>7} {'unrecorded':>10}")
    bad = 0
    if "kill" not in args.skip:
        for row in rows(args.rounds, args.seconds):
            bad += row.unrecorded
            numbers = f"{row.answered:9d} {row.allowed:6d} {row.failed:7d} {row.unrecorded:10d}"
            print(f"{row.scenario:36} {numbers}", flush=True)
    if "overload" not in args.skip:
        from benchmarks import overload  # noqa: PLC0415  (the load generator only when asked)

        scenario = str(ROOT / "rulesets" / "support_bot.scenario.toml")  # capacity here: about 100/s
        overload.main(["--rulesets", str(ROOT / "rulesets"), "--scenario", scenario, "--rates", "10,75,300"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
