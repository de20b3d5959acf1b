"""Long texts: each detector kind's cost per 100,000 characters, and each shipped ruleset's eval time."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.metadata
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import regex

from detectors import textforms
from detectors.base import DetectorError
from detectors.specs import DetectorSettings
from dsl import ir
from dsl.types import Stage
from engine.cli.bench.procstat import machine
from engine.runtime.evaluator import Evaluator
from engine.runtime.registry import Registry, compile_rulesets
from engine.runtime.request import request_from_dict

# Runtime dependencies whose licence files make the text: real licence prose, with a "©" and an "ö".
LICENSED = (
    *("lark", "PyYAML", "numpy", "regex", "grpcio", "phonenumbers", "cryptography", "onnxruntime"),
    *("protobuf", "spacy", "pydantic", "tldextract"),
)
SIZES = (100_000, 300_000, 1_000_000)
END_TO_END_SIZES = (300_000, 1_000_000)
RULESETS = Path(__file__).resolve().parent.parent / "rulesets"
REPORT = Path(__file__).resolve().parent / "LONG_TEXT.md"
COMMAND = ".venv/bin/python -m benchmarks.long_text_bench"
TENANT = "acme"


def licence_text(chars: int) -> str:
    """``chars`` characters of the licence files of Palisade's dependencies, repeated as needed."""
    files = {
        (item.read_text() or "").strip(): None
        for name in LICENSED
        for item in sorted(importlib.metadata.distribution(name).files or (), key=str)
        if item.name.upper().startswith(("LICEN", "COPYING"))
    }
    text = "\n\n".join(f for f in files if f)
    return (text * (chars // len(text) + 1))[:chars]


def shipped(settings: DetectorSettings, pool: ThreadPoolExecutor | None = None) -> dict[str, Evaluator]:
    """The shipped rulesets by name, their detectors loaded."""
    return Registry.of(compile_rulesets(str(RULESETS)), settings, pool).active


def stages(graph: ir.Graph) -> list[Stage]:
    """The stages a ruleset's rules (its library's included) are checked at."""
    return sorted({stage for rule in graph.rules for stage in rule.stages})


def request_data(stage: Stage, text: str) -> dict[str, Any]:
    """A Check of ``text`` at ``stage`` from a caller of the document's tenant; at `tool_call`, a file
    write of it into the workspace."""
    data: dict[str, Any] = {
        "stage": stage.value,
        "text": text,
        "principal": {"id": "u1", "tenant": TENANT},
        "metadata": {"tenant": TENANT, "source": "confluence"},
    }
    if stage is Stage.TOOL_CALL:
        arguments = {"path": "/workspace/LICENSE", "content": text}
        data["tool"] = {"name": "fs.write", "server": "builtin", "arguments": arguments}
    return data


Scan = Callable[[str], object]


def _patterns(node: object) -> Iterator[str]:
    """The patterns of every `matches` in an expression."""
    if isinstance(node, ir.Match):
        yield node.pattern
    if dataclasses.is_dataclass(node):
        for item in dataclasses.fields(node):
            yield from _patterns(getattr(node, item.name))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _patterns(item)


def scans(evaluators: dict[str, Evaluator]) -> dict[str, list[Scan]]:
    """What scans a text, by kind: each detector of the rulesets once, the rules' `matches`, and the
    text forms rules ask for."""
    found: dict[str, dict[str, Scan]] = {}
    for evaluator in evaluators.values():
        for name, run in evaluator.detector_runs.items():
            found.setdefault(run.kind, {})[name.split("(")[0]] = run.detector.detect
        for rule in evaluator.graph.rules:
            for pattern in _patterns([arm.condition for arm in rule.arms]):
                found.setdefault("matches", {})[pattern] = regex.compile(pattern).search
    found["decoded()"] = {"decoded": textforms.decoded}
    found["normalized()"] = {"normalized": textforms.normalized}
    return {kind: list(by_name.values()) for kind, by_name in sorted(found.items())}


def best_ms(call: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` calls, in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def kind_rows(groups: dict[str, list[Scan]], repeat: int) -> list[str]:
    """A table row per kind: its scans' ms per 100,000 characters at each size, then its slowest
    scan's at the largest ("error": a scan failed)."""
    texts = {size: licence_text(size) for size in SIZES}
    rows = []
    for kind, group in groups.items():
        try:
            for scan in group:
                scan(texts[SIZES[0]])  # warm up: models, lazy tables, phone metadata
            per_scan = {
                s: [best_ms(functools.partial(f, t), repeat) * 100_000 / s for f in group]
                for s, t in texts.items()
            }
        except DetectorError:
            rows.append(f"| {kind} | {len(group)} | error | error | error | error |")
            continue
        cells = [f"{sum(ms):.1f}" for ms in per_scan.values()] + [f"{max(per_scan[SIZES[-1]]):.1f}"]
        rows.append(f"| {kind} | {len(group)} | " + " | ".join(cells) + " |")
    return rows


def ruleset_rows(evaluators: dict[str, Evaluator], repeat: int) -> list[str]:
    """A table row per ruleset and stage: the eval time at each size, the outcome, any error codes."""
    rows = []
    for name, evaluator in evaluators.items():
        for stage in stages(evaluator.graph):
            cells = []
            for size in END_TO_END_SIZES:
                checked = request_from_dict(request_data(stage, licence_text(size)))
                ms = best_ms(functools.partial(evaluator.evaluate, checked), repeat)
                decision = evaluator.evaluate(checked)
                errors = ",".join(sorted({e.code for e in decision.errors})) or "none"
                cells.append(f"{ms:.0f} ms, {decision.outcome.name}, errors: {errors}")
            rows.append(f"| {name} | {stage.value} | " + " | ".join(cells) + " |")
    return rows


def report(repeat: int) -> str:
    """The markdown report: the machine, the command, the two tables."""
    settings = DetectorSettings(cache_bytes=0)  # every call scans: no result cached across calls
    with ThreadPoolExecutor(4, thread_name_prefix="bench-det") as pool:
        evaluators = shipped(settings, pool)
        kinds = kind_rows(scans(evaluators), repeat)
        rulesets = ruleset_rows(evaluators, repeat)
    facts = machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    sizes = " | ".join(f"{s:,} chars" for s in SIZES)
    return "\n".join(
        [
            "# Long texts: cost per 100,000 characters",
            "",
            f"Machine: {facts['cpu']}, {facts['nproc']} CPUs, Python {facts['python']}, "
            f"{facts['platform']}; {facts['date']}; load average {load} at the end.",
            "",
            f"Command: `{COMMAND} --repeat {repeat}` (fastest of {repeat} runs; no result cache).",
            "",
            "Text: the licence files of Palisade's dependencies, repeated to the length. A kind's row"
            " sums its scans: every detector of that kind in the shipped rulesets once (or every"
            " `matches` pattern of their rules, or the text form that rules ask for), at the"
            " service's default settings; a flat row scales linearly. The last column is the"
            " slowest single scan: a regex search may take 100 ms per 100,000 characters at the"
            " default `regex_timeout_ms` (50 ms for each 50,000 characters). The classifier's"
            " first pass picks the windows it scores, so its cost per character falls as texts grow.",
            "",
            f"| kind | scans | ms / 100k at {sizes} | slowest scan at {SIZES[-1]:,} |",
            "|---|---:|---:|---:|---:|---:|",
            *kinds,
            "",
            "## Each shipped ruleset, end to end (Evaluator.evaluate, 4 detector threads)",
            "",
            "| ruleset | stage | " + " | ".join(f"{s:,} chars" for s in END_TO_END_SIZES) + " |",
            "|---|---|---|---|",
            *rulesets,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the fastest counts)")
    parser.add_argument("--out", type=Path, default=REPORT, help="where the markdown goes")
    args = parser.parse_args()
    text = report(args.repeat)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
