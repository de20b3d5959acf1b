"""Side by side in one run: gRPC floor, targets, evaluators, PII, classifier; writes benchmarks/RESULTS.md."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import evaluator_bench, pii_bench
from benchmarks.grpc_bench import noop_server
from engine.cli.bench import runner
from engine.cli.bench.loadgen import LoadGenerators, server_process
from engine.cli.bench.report import Stats
from engine.cli.bench.runner import Options, Result
from engine.cli.bench.workload import generate, load_scenario

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
Table = list[str]


@dataclass(frozen=True, slots=True)
class Target:
    """A latency target of issue 7: a ruleset, its scenario, the rate and the p95 to meet."""

    label: str
    folder: Path
    scenario: str
    rate: float
    p95_ms: float


TARGETS = (
    Target("field-and-regex ruleset", HERE / "grpc_rulesets", "grpc_bench", 1000.0, 2.0),
    Target("PII, secrets, heuristics, classifier", HERE / "detector_rulesets", "input_guard", 50.0, 25.0),
)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A Markdown table; floats to about three significant digits, never in exponent form."""
    cells = [[_number(c) if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    return lines + ["| " + " | ".join(row) + " |" for row in cells]


def _number(value: float) -> str:
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 1 else 3
    return f"{value:,.{digits}f}"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "n/a"


# Over gRPC: the targets and the floor


SCENARIOS = HERE / "scenarios"
ASYNC_AUDIT = HERE / "async_audit.toml"  # the serve config of the "audit async" rows


def bench_served(folder: Path, scenario: str, options: Options, config: Path | None = None) -> Result:
    (subject,) = runner.subjects(str(folder), [str(SCENARIOS / f"{scenario}.toml")])
    served = runner.served(str(folder), config=str(config) if config else None)
    with served as (target, pid), LoadGenerators(target) as generators:
        return runner.bench(generators, subject, options, pid)


def bench_noop(scenario: str, options: Options) -> Result:
    """The same scenario against a no-op grpcio server: what gRPC and the client cost alone."""
    (subject,) = runner.subjects(str(HERE / "rulesets"), [str(SCENARIOS / f"{scenario}.toml")])
    with server_process(noop_server()) as server, LoadGenerators(server.target) as generators:
        return runner.bench(generators, subject, options, server.pid)


def _latency_row(label: str, result: Result) -> list[Any]:
    run, s = result.median, result.median.latency
    errors = sum(run.errors.values())
    cores = f"{run.server.cores:.2f}" if run.server else ""
    return [label, f"{run.rate:g}/s", s.p50, s.p90, s.p95, s.p99, s.max, errors, cores]


LATENCY_HEADERS = ("", "rate", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms", "errors", "server cores")


def targets_section(options: Options) -> Table:
    rows, verdicts = [], []
    for target in TARGETS:
        at_rate = replace(options, rate=target.rate)
        result = bench_served(target.folder, target.scenario, at_rate)
        relaxed = bench_served(target.folder, target.scenario, at_rate, ASYNC_AUDIT)
        rows.append(_latency_row(f"{target.label} (`{target.scenario}`)", result))
        rows.append(_latency_row("the same, audit `async`", relaxed))
        verdicts.append(_verdict(target, result))
    return [
        "## Latency targets over gRPC (open loop)",
        "",
        "Each ruleset served by `palisade serve` with its default settings (the audit log `sync`: a",
        'Check returns once its record is fsynced), then again with `[audit] durability = "async"`',
        "(benchmarks/async_audit.toml) to show what the fsync costs.",
        "",
        *table(LATENCY_HEADERS, rows),
        "",
        *verdicts,
    ]


def _verdict(target: Target, result: Result) -> str:
    met = result.p95_ms <= target.p95_ms and not result.median.errors
    return (
        f"- {target.label}: p95 {result.p95_ms:.2f} ms at {target.rate:g} Checks/s against "
        f"{target.p95_ms:g} ms, {sum(result.median.errors.values())} errors: "
        f"**{'met' if met else 'not met'}**. Outcomes: {_outcomes(result)}."
    )


def _outcomes(result: Result) -> str:
    return ", ".join(f"{k} {v.count}" for k, v in result.median.outcomes.items())


def floor_section(options: Options) -> Table:
    noop = bench_noop("twocond", options)
    ours = bench_served(HERE / "rulesets", "twocond", options)
    relaxed = bench_served(HERE / "rulesets", "twocond", options, ASYNC_AUDIT)
    rows = [
        _latency_row("no-op grpcio server", noop),
        _latency_row("Palisade Check, `twocond`", ours),
        _latency_row("the same, audit `async`", relaxed),
    ]
    a, b, c = noop.median.latency, ours.median.latency, relaxed.median.latency
    return [
        "## The gRPC floor",
        "",
        "The same load generator and requests (`twocond` scenario: tool calls) against a no-op grpcio",
        "server (`benchmarks/grpc_noop.py`, empty reply, no decoding) and `palisade serve` with the",
        "field-only ruleset `benchmarks/rulesets/twocond.pal`.",
        "",
        *table(LATENCY_HEADERS, rows),
        "",
        f"Palisade / floor: {_ratios(b, a)}; with audit `async`: {_ratios(c, a)}.",
    ]


def _ratios(value: Stats, base: Stats) -> str:
    return ", ".join(f"{q} {ratio(getattr(value, q), getattr(base, q))}" for q in ("p50", "p95", "p99"))


# In process: evaluators, PII, classifier


def evaluator_section(settings: evaluator_bench.Settings) -> Table:
    jobs, notes = evaluator_bench.twocond()
    rows = evaluator_bench.run_jobs(jobs, settings)
    base = {r.case: r.timing.median_us for r in rows if r.engine == "palisade"}
    body = [
        [
            r.case,
            r.engine,
            r.about,
            r.timing.median_us,
            r.timing.p99_us,
            ratio(r.timing.median_us, base[r.case]),
        ]
        for r in rows
    ]
    headers = ("case", "engine", "call", "median µs", "p99 µs", "/ Palisade")
    return [
        "## Evaluator: the same pure policy in three engines",
        "",
        "`benchmarks/rulesets/twocond.{pal,rego,cedar}` (one rule, two conditions), in process, each call",
        f"timed alone; {settings.repeats} repetitions x {settings.iterations} calls, medians "
        "(benchmarks/evaluator_bench.py).",
        "",
        *table(headers, body),
        *[f"\nNote: {n}" for n in notes],
    ]


def pii_section(passes: int) -> Table:
    from detectors import pii  # noqa: PLC0415 (presidio loads slowly; only this section needs it)

    texts = pii_bench.load_corpus()
    with pii.offline_tldextract():
        found = pii_bench.engines(with_ner=importlib.util.find_spec(pii_bench.NER_MODEL) is not None)
        timings = [pii_bench.measure(name, scan, texts, passes) for name, scan in found.items()]
    base = timings[0].p50_us
    rows = [[t.engine, t.p50_us, t.p90_us, t.p99_us, ratio(t.p50_us, base)] for t in timings]
    return [
        "## PII: the `pii` detector beside presidio's AnalyzerEngine",
        "",
        f"{len(texts)} texts of about 500 characters (benchmarks/data/pii_corpus.jsonl) x {passes} "
        "pass(es) after a warm-up pass, each call timed alone (benchmarks/pii_bench.py).",
        "",
        *table(("engine", "p50 µs", "p90 µs", "p99 µs", "p50 / palisade pii"), rows),
    ]


def naive_classifier(model: str) -> Callable[[str], float]:
    """The model as a first try would run it: default session options, one window per run."""
    import onnxruntime as ort  # type: ignore[import-untyped]  # noqa: PLC0415
    from tokenizers import Tokenizer  # noqa: PLC0415

    from detectors.catalogue import resolve  # noqa: PLC0415

    info = resolve(model)
    session = ort.InferenceSession(info.onnx_path)
    tokenizer = Tokenizer.from_file(os.path.join(info.path, "tokenizer.json"))
    tokenizer.enable_truncation(max_length=info.max_length, stride=info.max_length // 4)
    inputs, index = {i.name for i in session.get_inputs()}, info.labels.index(info.label)

    def score(text: str) -> float:
        encoding, best = tokenizer.encode(text), 0.0
        for window in [encoding, *encoding.overflowing]:
            ids = np.array([window.ids], dtype=np.int64)
            feed = {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids),
            }
            logits = session.run(None, {k: v for k, v in feed.items() if k in inputs})[0][0]
            probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            best = max(best, float(probabilities[index]))
        return best

    return score


def classifier_section(count: int, passes: int) -> Table:
    title = "## Injection classifier: Palisade's runtime beside the same model run naively"
    try:
        from detectors.classifier import ClassifierDetector  # noqa: PLC0415
        from detectors.specs import ClassifierParams, DetectorSettings  # noqa: PLC0415

        params = ClassifierParams(model="prompt-injection")
        ours = ClassifierDetector(params, DetectorSettings())
        spinning = ClassifierDetector(params, DetectorSettings(classifier_spinning=True))
        naive = naive_classifier("prompt-injection")
    except Exception as exc:  # not built yet, or the model is missing: say so
        return [title, "", f"Not yet possible: {type(exc).__name__}: {exc}"]
    texts = [r["text"] for r in generate(load_scenario(SCENARIOS / "input_guard.toml"), count).requests]
    timings = [
        pii_bench.measure("palisade classifier (windows batched; threads sleep)", ours.detect, texts, passes),
        pii_bench.measure("the same, `classifier_spinning = true`", spinning.detect, texts, passes),
        pii_bench.measure("naive: default session (spinning), one run per window", naive, texts, passes),
    ]
    agree = sum(bool(ours.detect(t).findings) == (naive(t) >= 0.5) for t in texts)
    rows = [[t.engine, t.p50_us / 1000, t.p90_us / 1000, t.p99_us / 1000] for t in timings]
    return [
        title,
        "",
        f"{len(texts)} prompts of about 1,000 characters (the `input_guard` scenario) x {passes} pass(es),",
        "each call timed alone: tokenise, cut into 128-token windows (stride 32), score every window.",
        "",
        *table(("engine", "p50 ms", "p90 ms", "p99 ms"), rows),
        "",
        f"Naive / Palisade: p50 {ratio(timings[2].p50_us, timings[0].p50_us)}, "
        f"p99 {ratio(timings[2].p99_us, timings[0].p99_us)}; naive / Palisade spinning: p50 "
        f"{ratio(timings[2].p50_us, timings[1].p50_us)}. Same verdict (score >= 0.5) on {agree} of "
        f"{len(texts)} prompts.",
        "",
        "One call at a time on an idle machine, spinning threads answer sooner; in the server, where",
        "other requests and detectors want the cores, they cost far more than they save, so Palisade's",
        "sessions sleep by default (benchmarks/CLASSIFIER.md: input_guard at 50/s, p95 109 -> 31 ms).",
    ]


# The report


def header(argv: Sequence[str], started: float, load_before: tuple[float, ...], options: Options) -> Table:
    info = evaluator_bench.machine()
    command = " ".join([".venv/bin/python -m benchmarks.compare", *argv])
    repeat = f"--duration {options.duration:g} --warmup {options.warmup:g} --repeat {options.repeat}"
    return [
        "# Side-by-side results",
        "",
        f"Written by `benchmarks/compare.py` on {info['date']} in {time.monotonic() - started:.0f} s; "
        "do not edit by hand, rerun it.",
        "",
        f"- Machine: {info['cpu']}, nproc {info['nproc']}, Python {info['python']}, {info['platform']}.",
        f"- Load average (1, 5, 15 min) at the start: {_load(load_before)}; "
        f"at the end: {_load(os.getloadavg())}. The machine is shared with other work: compare the "
        "ratios, which come from the same run.",
        f"- Command: `{command}`. The gRPC rows are what `palisade bench` measures, e.g. "
        "`palisade bench --rulesets benchmarks/grpc_rulesets "
        f"--scenario benchmarks/scenarios/grpc_bench.toml --rate 1000 {repeat}`: open loop, latency "
        "from the scheduled send, medians of the repetitions.",
    ]


def _load(values: Sequence[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not results")
    parser.add_argument("--out", default=str(RESULTS), help="where to write the Markdown")
    args = parser.parse_args(argv)
    started, load = time.monotonic(), os.getloadavg()
    options = Options(1000.0, 2.0, 1.0, 1) if args.quick else Options(1000.0, 10.0, 2.0, 3)
    settings = evaluator_bench.Settings(50, 200, 3) if args.quick else evaluator_bench.Settings(1000, 3000, 5)
    sections = [
        targets_section(options),
        floor_section(options),
        evaluator_section(settings),
        pii_section(1),
        classifier_section(40 if args.quick else 200, 1 if args.quick else 2),
    ]
    command = list(argv if argv is not None else sys.argv[1:])
    lines = header(command, started, load, options) + [line for s in sections for line in ["", *s]]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
