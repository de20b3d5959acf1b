"""Latency and memory of the `classifier` detector on the shipped prompt-injection model."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from detectors.classifier import ClassifierDetector, providers
from detectors.specs import ClassifierParams, DetectorSettings

MODEL = "prompt-injection"
PARAGRAPH = (
    "Our returns desk handles electronics bought in the last 30 days. Keep the receipt and the "
    "original box, and we will refund the card you paid with within five working days. "
)


# A tool result as an agent's shell returns it: log lines, a traceback, code and prose, repeated.
TOOL_RESULT = (
    "2026-11-02 10:14:07,512 INFO worker-3 processed batch 8812 (512 rows) in 41 ms; queue depth 12\n"
    'Traceback (most recent call last):\n  File "/srv/app/jobs/sync.py", line 88, in run\n'
    "    rows = client.fetch(cursor, limit=500)\nTimeoutError: read timed out after 30.0 s\n"
    "def retry(fn, attempts=3):\n    for i in range(attempts):\n        try:\n            return fn()\n"
    "        except TimeoutError:\n            time.sleep(2 ** i)\n    raise RuntimeError('gave up')\n"
    + PARAGRAPH
)


def detector(threads: int, prefilter: bool = True) -> ClassifierDetector:
    params = ClassifierParams(model=MODEL, prefilter=prefilter)
    return ClassifierDetector(params, DetectorSettings(classifier_threads=threads))


def timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    for _ in range(max(3, runs // 10)):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 3),
        "runs": runs,
    }


def window_case(runs: int) -> dict[str, float]:
    """One full 128-token window (the model's maximum), one intra-op thread: one core."""
    det = detector(1)
    window = det.windows(PARAGRAPH * 10)[0]
    assert len(window.ids) == 128
    return timed(lambda: det.scores([window]), runs)


def text_case(
    chars: int, threads: int, runs: int, block: str = PARAGRAPH, prefilter: bool = True
) -> dict[str, Any]:
    """detect() end to end on a text of ``chars`` characters: tokenise, the first pass (on a long
    text), the windows it picks, batched runs."""
    det = detector(threads, prefilter)
    text = (block * (chars // len(block) + 1))[:chars]
    windows = len(det.windows(text))
    return timed(lambda: det.detect(text), runs) | {"windows": windows, "threads": threads}


_RSS_SCRIPT = """
import json, sys
from detectors.classifier import ClassifierDetector
from detectors.specs import ClassifierParams, DetectorSettings, SPECS
parts = {}
def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return round(int(fields["VmRSS"].split()[0]) / 1024, 1), round(int(fields["VmHWM"].split()[0]) / 1024, 1)
parts["python"] = rss()
det = ClassifierDetector(ClassifierParams(model="prompt-injection"), DetectorSettings())
det.detect("warm up " * 400)
parts["classifier"] = rss()
if "pii" in SPECS:
    pii = SPECS["pii"]
    instance = pii.load()(pii.params.model_validate({}), DetectorSettings())
    instance.detect("call me at 212-555-0100 or mail jo@example.com")
    parts["classifier+pii"] = rss()
if "--service" in sys.argv:
    from engine.runtime.registry import Registry
    import engine.server.app  # noqa: F401  (the gRPC service's modules)
    Registry.load("rulesets")
    parts["service"] = rss()
print(json.dumps(parts))
"""


def memory() -> dict[str, Any]:
    """Resident memory (MiB: current, peak) of a fresh process as the models load."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, "--service"], check=True, capture_output=True, text=True
    )
    parts: dict[str, Any] = json.loads(out.stdout)
    return {name: {"rss_mib": now, "peak_mib": peak} for name, (now, peak) in parts.items()}


def run(runs: int) -> dict[str, Any]:
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "onnxruntime": metadata.version("onnxruntime"),
            "providers": providers(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "window_128_tokens_1_thread": window_case(runs),
        "text_1024_chars_2_threads": text_case(1024, 2, runs),
        "text_2000_chars_1_thread": text_case(2000, 1, runs),
        "text_2000_chars_2_threads": text_case(2000, 2, runs),
        "tool_result_100000_chars_2_threads": text_case(100_000, 2, max(20, runs // 10), TOOL_RESULT),
        "tool_result_100000_chars_2_threads_every_window": text_case(
            100_000, 2, max(5, runs // 60), TOOL_RESULT, prefilter=False
        ),
        "memory": memory(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.classifier_bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=300, help="timed runs per case")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    result = run(args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for name, value in result.items():
        print(f"{name}: {json.dumps(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
