"""The latency-budget benchmark: each ruleset's scenario, open loop over gRPC, p95 against its budget."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from dsl.compiler import run
from dsl.diagnostics import CompileError
from engine.cli.bench.loadgen import LoadGenerators, palisade_server, server_process
from engine.cli.bench.procstat import machine, usage
from engine.cli.bench.report import Run, combine, measure, server_load, stats_table, summary_line
from engine.cli.bench.workload import (
    Scenario,
    ScenarioError,
    Workload,
    find_scenario,
    generate,
    load_scenario,
)
from engine.client.tls import tls_from_arguments
from engine.runtime.registry import source_files


class BenchError(Exception):
    """The benchmark cannot run as asked (a ruleset without a scenario, a bad file)."""


@dataclass(frozen=True, slots=True)
class Options:
    rate: float
    duration: float
    warmup: float
    repeat: int

    def count(self, seconds: float) -> int:
        return max(1, math.ceil(self.rate * seconds))


@dataclass(frozen=True, slots=True)
class Subject:
    """A ruleset to bench, its declared budget (0: none) and its scenario."""

    ruleset: str
    path: str
    budget_us: int
    scenario: Scenario


@dataclass(frozen=True, slots=True)
class Result:
    subject: Subject
    median: Run
    repetitions: list[Run]

    @property
    def p95_ms(self) -> float:
        return self.median.latency.p95

    def failures(self) -> list[str]:
        """Why the gate fails this ruleset: over its budget, or calls that failed."""
        name, run = self.subject.ruleset, self.median
        found = []
        budget_ms = self.subject.budget_us / 1000
        if budget_ms and not self.p95_ms <= budget_ms:  # a NaN p95 (no reply at all) fails too
            budget = _duration(self.subject.budget_us)
            found.append(
                f"{name}: p95 {self.p95_ms:.2f} ms is over its budget of p95 {budget}"
                f" (median of {len(self.repetitions)} repetitions at {run.rate:g} Checks/s)"
            )
        if run.errors:
            codes = ", ".join(f"{k} {v}" for k, v in sorted(run.errors.items()))
            found.append(f"{name}: {sum(run.errors.values())} of {run.sent} calls failed ({codes})")
        return found


def _duration(us: int) -> str:
    return f"{us // 1000}ms" if us % 1000 == 0 else f"{us}us"


# What to bench


def rulesets(folder: str) -> dict[str, tuple[str, int]]:
    """Every ruleset under ``folder`` (libraries left out): name -> (path, budget p95 in µs)."""
    found: dict[str, tuple[str, int]] = {}
    for path in source_files(folder):
        compiled = run(path)
        if compiled.ok and compiled.graph is None:
            continue  # a library
        if not compiled.ok or compiled.graph is None:
            raise CompileError([d for d in compiled.diagnostics if d.is_error], compiled.sources)
        found[compiled.graph.name] = (path, compiled.graph.budget_p95_us)
    if not found:
        raise BenchError(f"no ruleset under {folder}")
    return found


def subjects(folder: str, scenario_files: list[str] | None) -> list[Subject]:
    """The rulesets to bench with their scenarios: the files given, else one per ruleset by name."""
    known = rulesets(folder)
    try:
        if scenario_files:
            scenarios = [load_scenario(p) for p in scenario_files]
        else:
            scenarios = [load_scenario(_scenario_for(path)) for path, _ in known.values()]
    except (OSError, ScenarioError) as exc:
        raise BenchError(str(exc)) from None
    for scenario in scenarios:
        if scenario.ruleset not in known:
            raise BenchError(f"{scenario.path}: ruleset {scenario.ruleset!r} is not under {folder}")
    return [Subject(s.ruleset, *known[s.ruleset], s) for s in scenarios]


def _scenario_for(ruleset_file: str) -> Path:
    path = find_scenario(ruleset_file)
    if path is None:
        stem = Path(ruleset_file).with_suffix("")
        raise BenchError(f"no scenario for {ruleset_file}: add {stem}.scenario.toml beside it")
    return path


# Running


@contextmanager
def served(
    folder: str, target: str | None = None, workers: int = 1, config: str | None = None
) -> Iterator[tuple[str, int | None]]:
    """A running server: the one at ``target``, else `palisade serve` started here (with its pid)."""
    if target:
        yield target, None
        return
    config = os.path.abspath(config) if config else None
    with (
        tempfile.TemporaryDirectory(prefix="palisade-bench-") as data_dir,
        server_process(palisade_server(os.path.abspath(folder), data_dir, workers, config)) as server,
    ):
        yield server.target, server.pid


def repetition(
    generators: LoadGenerators, options: Options, workload: Workload, first: int, pid: int | None
) -> Run:
    """One measured phase of ``options.duration`` seconds from arrival ``first``."""
    before, started = (usage(pid) if pid else None), time.perf_counter()
    samples = generators.run(options.rate, first, options.count(options.duration))
    seconds = time.perf_counter() - started
    result = measure(samples, workload.names, options.rate, first)
    if pid and before:
        result = replace(result, server=server_load(before, usage(pid), seconds))
    return result


def bench(generators: LoadGenerators, subject: Subject, options: Options, pid: int | None) -> Result:
    """Warm up, then ``options.repeat`` measured repetitions, each on requests not sent before."""
    warm, each = options.count(options.warmup), options.count(options.duration)
    workload = generate(subject.scenario, warm + each * options.repeat)
    generators.load(workload.encoded)
    if options.warmup > 0:
        generators.run(options.rate, 0, warm)
    runs = [repetition(generators, options, workload, warm + k * each, pid) for k in range(options.repeat)]
    return Result(subject, combine(runs), runs)


def describe(result: Result, options: Options) -> str:
    subject, run = result.subject, result.median
    budget = f"budget p95 {_duration(subject.budget_us)}" if subject.budget_us else "no budget declared"
    p95s = " ".join(f"{r.latency.p95:.2f}" for r in result.repetitions)
    verdict = "FAIL" if result.failures() else "ok"
    lines = [
        f"{subject.ruleset} ({subject.scenario.path}): {options.rate:g} Checks/s, {options.repeat} x "
        f"{options.duration:g} s after {options.warmup:g} s of warm-up; medians of the repetitions",
        f"  {budget}; p95 {result.p95_ms:.2f} ms (repetitions: {p95s})  {verdict}",
        summary_line(run),
        *stats_table(run),
    ]
    return "\n".join(lines)


def report(results: list[Result], options: Options, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "machine": machine(),
        "command": " ".join(["palisade", *sys.argv[1:]]),
        "options": asdict(options)
        | {k: getattr(args, k) for k in ("processes", "workers", "target", "config")},
        "passed": not any(r.failures() for r in results),
        "rulesets": [
            {
                "ruleset": r.subject.ruleset,
                "path": r.subject.path,
                "scenario": r.subject.scenario.path,
                "budget_p95_ms": r.subject.budget_us / 1000 or None,
                "p95_ms": r.p95_ms,
                "failures": r.failures(),
                "median": asdict(r.median),
                "repetitions": [asdict(x) for x in r.repetitions],
            }
            for r in results
        ],
    }


def bench_all(args: argparse.Namespace, chosen: list[Subject], options: Options) -> list[Result]:
    """Bench each subject in turn against one server, printing each report as it is done."""
    results = []
    with (
        served(args.rulesets, args.target, args.workers, args.config) as (target, pid),
        LoadGenerators(target, processes=args.processes, tls=tls_from_arguments(args)) as generators,
    ):
        for subject in chosen:
            results.append(bench(generators, subject, options, pid))
            print(describe(results[-1], options) + "\n", flush=True)
    return results


def main(args: argparse.Namespace) -> int:
    options = Options(args.rate, args.duration, args.warmup, args.repeat)
    try:
        results = bench_all(args, subjects(args.rulesets, args.scenario), options)
    except (BenchError, CompileError, RuntimeError) as exc:  # RuntimeError: the server did not start
        print(f"palisade bench: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(report(results, options, args), indent=2) + "\n")
    failures = [f for r in results for f in r.failures()]
    for failure in failures:
        print(f"palisade bench: FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0
