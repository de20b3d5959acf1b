"""Evaluator benchmark: time per decision on the 20-rule ruleset, and a two-condition policy across engines.

    .venv/bin/python -m benchmarks.evaluator_bench            # a table
    .venv/bin/python -m benchmarks.evaluator_bench --json     # the same numbers as JSON

Inputs live in benchmarks/rulesets/: bench20.pal with bench20.requests.json (the 20-rule case),
and twocond.{pal,rego,cedar} with twocond.requests.json (one rule, two conditions, for Palisade,
regorus and cedarpy). regorus and cedarpy come from the `bench` extra (`pip install -e '.[bench]'`);
an engine that is not installed is reported as such and skipped.

Every call is timed on its own with time.perf_counter_ns after a warm-up. The rows take turns
(round-robin) repetition by repetition; each repetition gives a median, p90 and p99, and the table
shows the median of each over the repetitions, and the fastest repetition's median ("best"). The
"regex" column is what the regex engine alone needs for the decision; "evaluator" is the rest.
Results and the machine they came from: benchmarks/EVALUATOR.md. This is a benchmark, not a test:
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.metadata
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import regex

import engine.runtime.linker
from dsl.compiler import compile_file
from engine.cli.bench import procstat
from engine.runtime.decision import Decision
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import Request, request_from_dict

RULESETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rulesets")
TARGET_US = 20.0


# Measurement


@dataclass(frozen=True, slots=True)
class Timing:
    median_us: float  # median over the repetitions of each repetition's median
    p90_us: float
    p99_us: float
    best_median_us: float  # the fastest repetition's median: how noisy the machine was
    iterations: int
    repeats: int


def _quantile(sorted_ns: list[int], q: float) -> float:
    return float(sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))])


def _repetition(fn: Callable[[], object], iterations: int) -> tuple[float, float, float]:
    clock = time.perf_counter_ns
    samples = [0] * iterations
    for i in range(iterations):
        start = clock()
        fn()
        samples[i] = clock() - start
    samples.sort()
    return _quantile(samples, 0.5), _quantile(samples, 0.9), _quantile(samples, 0.99)


def measure_all(
    fns: list[Callable[[], object]], *, warmup: int, iterations: int, repeats: int
) -> list[Timing]:
    """Time each function call by call, round-robin: repetition r of every function runs before r + 1.

    Taking turns spreads the machine's slow and fast spells over all the functions alike, so
    that numbers in one table compare. Each repetition gives a median, p90 and p99; a Timing holds
    their medians over the repetitions.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    runs: list[list[tuple[float, float, float]]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, results in zip(fns, runs, strict=True):
            results.append(_repetition(fn, iterations))
    return [
        Timing(
            statistics.median(r[0] for r in results) / 1000,
            statistics.median(r[1] for r in results) / 1000,
            statistics.median(r[2] for r in results) / 1000,
            min(r[0] for r in results) / 1000,
            iterations,
            repeats,
        )
        for results in runs
    ]


@dataclass(frozen=True, slots=True)
class Row:
    case: str
    engine: str
    about: str
    timing: Timing
    regex_floor_us: float | None = None  # time the regex engine alone needs for this decision

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("timing"))
        return data


@dataclass(frozen=True, slots=True)
class Settings:
    warmup: int
    iterations: int
    repeats: int

    def run(self, fn: Callable[[], object]) -> Timing:
        return self.run_all([fn])[0]

    def run_all(self, fns: list[Callable[[], object]]) -> list[Timing]:
        return measure_all(fns, warmup=self.warmup, iterations=self.iterations, repeats=self.repeats)


@dataclass(frozen=True, slots=True)
class Job:
    """One thing to time: a row of the table before it has its numbers."""

    case: str
    engine: str
    about: str
    fn: Callable[[], object]
    floor: Callable[[Settings], float | None] | None = None


# Inputs


def _read(name: str) -> str:
    with open(os.path.join(RULESETS, name), encoding="utf-8") as handle:
        return handle.read()


def load_cases(name: str) -> dict[str, dict[str, Any]]:
    cases: dict[str, dict[str, Any]] = json.loads(_read(name))
    return cases


def _checked(evaluator: Evaluator, request: Request, expect: str, case: str) -> Decision:
    decision = evaluator.evaluate(request)
    if decision.outcome.label != expect or decision.errors:
        raise SystemExit(f"{case}: expected {expect}, got {decision.summary()}")
    return decision


# The regex floor: which searches and detector calls one decision makes, each timed on its own.


class _RecordingPattern:
    def __init__(self, pattern: Any, calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> None:
        self._pattern, self._calls = pattern, calls

    def search(self, *args: Any, **kwargs: Any) -> Any:
        self._calls.append((self._pattern.search, args, kwargs))
        return self._pattern.search(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pattern, name)


class _RecordingDetector:
    def __init__(self, detector: Any, calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> None:
        self._detector, self._calls = detector, calls

    def detect(self, text: str) -> Any:
        self._calls.append((self._detector.detect, (text,), {}))
        return self._detector.detect(text)


class _RegexShim:
    """Stands in for ``regex`` in engine.runtime.linker while an instrumented evaluator links."""

    def __init__(self, calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> None:
        self._calls = calls

    def compile(self, pattern: str, *args: Any, **kwargs: Any) -> Any:
        return _RecordingPattern(regex.compile(pattern, *args, **kwargs), self._calls)

    def __getattr__(self, name: str) -> Any:
        return getattr(regex, name)


def regex_floor(evaluator: Evaluator, request: Request, settings: Settings) -> float | None:
    """Sum of the medians of each regex search and detector call the decision makes, timed alone.

    The decision's time less this floor is what the evaluator itself costs. None when the
    evaluator's internals changed so that the calls cannot be recorded.
    """
    calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
    saved = getattr(engine.runtime.linker, "regex", None)
    if saved is not regex:
        return None
    try:
        setattr(engine.runtime.linker, "regex", _RegexShim(calls))  # noqa: B010
        shadow = Evaluator(evaluator.graph, evaluator.settings)
    except Exception:
        return None
    finally:
        setattr(engine.runtime.linker, "regex", saved)  # noqa: B010
    try:
        shadow.detector_runs = {
            node_id: replace(run, detector=_RecordingDetector(run.detector, calls))
            for node_id, run in shadow.detector_runs.items()
        }
        shadow.evaluate(request)
    except Exception:
        return None
    floor = 0.0
    for fn, args, kwargs in calls:
        floor += settings.run(functools.partial(fn, *args, **kwargs)).median_us
    return floor


# The engines


def bench20() -> list[Job]:
    evaluator = Evaluator(compile_file(os.path.join(RULESETS, "bench20.pal")))
    jobs = []
    for case, spec in load_cases("bench20.requests.json").items():
        request = request_from_dict(spec["request"])
        _checked(evaluator, request, spec["expect"], case)
        floor = functools.partial(regex_floor, evaluator, request)
        fn = functools.partial(evaluator.evaluate, request)
        jobs.append(Job(f"bench20/{case}", "palisade", spec["about"], fn, floor))
    return jobs


def _optional(module: str) -> Any | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def twocond() -> tuple[list[Job], list[str]]:
    """The same one-rule, two-condition policy in Palisade, regorus and cedarpy."""
    jobs, notes = [], []
    evaluator = Evaluator(compile_file(os.path.join(RULESETS, "twocond.pal")))
    regorus, cedarpy = _optional("regorus"), _optional("cedarpy")
    if regorus is None:
        notes.append("regorus is not installed (pip install -e '.[bench]'): skipped")
    if cedarpy is None:
        notes.append("cedarpy is not installed (pip install -e '.[bench]'): skipped")
    for case, spec in load_cases("twocond.requests.json").items():
        name, data, matched = f"twocond/{case}", spec["request"], spec["expect"] == "block"
        request = request_from_dict(data)
        _checked(evaluator, request, spec["expect"], case)
        about = "evaluate(Request): the typed request is built beforehand"
        jobs.append(Job(name, "palisade", about, functools.partial(evaluator.evaluate, request)))
        if regorus is not None:
            jobs.extend(_regorus(regorus, name, data, matched))
        if cedarpy is not None:
            jobs.append(_cedar(cedarpy, name, data, matched))
    return jobs, notes


def _regorus(regorus: Any, name: str, data: dict[str, Any], matched: bool) -> list[Job]:
    rego = regorus.Engine()
    rego.add_policy("twocond.rego", _read("twocond.rego"))
    doc = {"tool": data["tool"], "principal": data["principal"]}

    def decide() -> Any:
        rego.set_input(doc)
        return rego.eval_rule("data.palisade.deny")

    if decide() is not matched:
        raise SystemExit(f"regorus disagrees on {name}")
    preset = regorus.Engine()
    preset.add_policy("twocond.rego", _read("twocond.rego"))
    preset.set_input(doc)
    return [
        Job(name, "regorus", "set_input(dict) + eval_rule, per request", decide),
        Job(
            name,
            "regorus",
            "eval_rule only, input already set (a lower bound)",
            functools.partial(preset.eval_rule, "data.palisade.deny"),
        ),
    ]


def _cedar(cedarpy: Any, name: str, data: dict[str, Any], matched: bool) -> Job:
    policies = cedarpy.PolicySet.from_str(_read("twocond.cedar"))
    entities = cedarpy.Entities.from_json_str("[]")
    cedar_request = {
        "principal": f'User::"{data["principal"]["id"]}"',
        "action": 'Action::"call"',
        "resource": f'Tool::"{data["tool"]["name"]}"',
        "context": {"tool": data["tool"]["name"], "roles": data["principal"]["roles"]},
    }

    def decide() -> Any:
        return cedarpy.is_authorized(cedar_request, policies, entities).allowed

    if decide() is not matched:
        raise SystemExit(f"cedarpy disagrees on {name}")
    return Job(name, "cedarpy", "is_authorized(dict, pre-parsed PolicySet, pre-parsed Entities)", decide)


def run_jobs(jobs: list[Job], settings: Settings) -> list[Row]:
    timings = settings.run_all([job.fn for job in jobs])
    floor_settings = replace(settings, iterations=max(200, settings.iterations // 4))
    return [
        Row(job.case, job.engine, job.about, timing, job.floor(floor_settings) if job.floor else None)
        for job, timing in zip(jobs, timings, strict=True)
    ]


# Report


def machine() -> dict[str, Any]:
    """The machine, with the versions of the engines compared."""
    return procstat.machine() | {"regorus": _version("gordon-to-regorus"), "cedarpy": _version("cedarpy")}


def render(info: dict[str, Any], rows: list[Row], notes: list[str], floor: Timing) -> str:
    t0 = rows[0].timing
    lines = [
        f"machine: {info['cpu']}, nproc {info['nproc']}, Python {info['python']}, {info['date']}",
        f"regorus {info['regorus']}, cedarpy {info['cedarpy']}; {t0.repeats} repetitions x "
        f"{t0.iterations} calls, round-robin; timer floor (an empty call) {floor.median_us:.2f} us",
        "",
        f"{'case':<22} {'engine':<9} {'median':>7} {'p90':>7} {'p99':>7} {'best':>7} "
        f"{'regex':>6} {'evaluator':>9}  notes",
    ]
    for row in rows:
        t = row.timing
        regex_cell = overhead = ""
        if row.regex_floor_us is not None:
            regex_cell = f"{row.regex_floor_us:.1f}"
            overhead = f"{t.median_us - row.regex_floor_us:.1f}"
        lines.append(
            f"{row.case:<22} {row.engine:<9} {t.median_us:>7.2f} {t.p90_us:>7.2f} {t.p99_us:>7.2f} "
            f"{t.best_median_us:>7.2f} {regex_cell:>6} {overhead:>9}  {row.about}"
        )
    lines += [
        "",
        "microseconds per decision. median, p90, p99: medians over the repetitions of each one's;",
        "best: the fastest repetition's median; regex: what the regex engine alone needs for the",
        "decision (each search and detector call it makes, timed on its own); evaluator: median - regex.",
    ]
    bench_rows = [r for r in rows if r.case.startswith("bench20/")]
    if bench_rows:
        worst = max(r.timing.median_us for r in bench_rows)
        verdict = "meets" if worst <= TARGET_US else "misses"
        lines.append(f"bench20: slowest median {worst:.1f} us {verdict} the {TARGET_US:g} us target")
    lines.extend(f"note: {n}" for n in notes)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evaluator_bench", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--iterations", type=int, default=5000, help="timed calls per repetition")
    parser.add_argument("--repeats", type=int, default=7, help="repetitions (medians are taken over them)")
    parser.add_argument("--warmup", type=int, default=2000, help="untimed calls first")
    parser.add_argument("--quick", action="store_true", help="few iterations, for a smoke run")
    args = parser.parse_args(argv)
    settings = Settings(args.warmup, args.iterations, args.repeats)
    if args.quick:
        settings = Settings(50, 200, 3)
    more, notes = twocond()
    jobs = [*bench20(), *more, Job("(timer)", "-", "an empty call: the timer's own cost", lambda: None)]
    rows = run_jobs(jobs, settings)
    floor = rows.pop().timing
    info = machine()
    if args.json:
        doc = {
            "machine": info,
            "timer_floor_us": floor.median_us,
            "target_us": TARGET_US,
            "rows": [r.as_dict() for r in rows],
            "notes": notes,
        }
        print(json.dumps(doc, indent=2))
    else:
        print(render(info, rows, notes, floor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
