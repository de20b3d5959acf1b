"""`palisade score`: confusion matrix, recall and false-positive rate of a ruleset or a detector."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dsl.compiler import compile_file, compile_source
from dsl.diagnostics import CompileError
from dsl.types import Stage
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import RequestError, request_from_dict

_POSITIVE = {"1", "true", "yes", "positive", "malicious", "injection", "attack", "unsafe"}
_NEGATIVE = {"0", "false", "no", "negative", "benign", "safe", "clean"}
_WRAPPER = """ruleset score version "0" {{
  default allow
  detector target = {call}
  rule flagged on {stages} {{
    when target(content).found then block
  }}
}}
"""


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    errors: int = 0

    def add(self, label: bool, flagged: bool) -> None:
        if label:
            self.tp, self.fn = self.tp + flagged, self.fn + (not flagged)
        else:
            self.fp, self.tn = self.fp + flagged, self.tn + (not flagged)

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def metrics(self) -> dict[str, float | None]:
        def ratio(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        return {
            "recall": ratio(self.tp, self.tp + self.fn),
            "fpr": ratio(self.fp, self.fp + self.tn),
            "precision": ratio(self.tp, self.tp + self.fp),
            "accuracy": ratio(self.tp + self.tn, self.n),
        }


def parse_label(value: Any) -> bool:
    """1/0, true/false, or words such as malicious/benign."""
    text = str(value).strip().lower()
    if text in _POSITIVE:
        return True
    if text in _NEGATIVE:
        return False
    raise ValueError(f"unknown label {value!r}: use 1/0, true/false, malicious/benign")


def rows(path: str) -> Iterator[dict[str, Any]]:
    """The rows of a JSON Lines file (one object per line) or a CSV file with a header."""
    with open(path, encoding="utf-8", newline="") as handle:
        if path.endswith(".csv"):
            yield from csv.DictReader(handle)
            return
        for line in handle:
            if line.strip():
                yield json.loads(line)


def evaluator_for(target: str, stage: str) -> Evaluator:
    """A ruleset file, or a detector call such as `classifier(model: "prompt-injection")`."""
    if target.endswith(".pal"):
        return Evaluator(compile_file(target))
    source = _WRAPPER.format(call=target, stages=stage)
    return Evaluator(compile_source(source, os.path.join(os.getcwd(), "score.pal")))


def score(evaluator: Evaluator, args: argparse.Namespace) -> dict[str, Counts]:
    """Counts over all rows (key ""), and per value of the ``--by`` field when one is given."""
    groups: dict[str, Counts] = {"": Counts()}
    flag = {word.strip().upper() for word in args.flag.split(",")}
    for number, row in enumerate(rows(args.data), 1):
        try:
            label = parse_label(row[args.label_field])
            data = row.get("request") or {"text": str(row[args.text_field])}
            request = request_from_dict({"stage": args.stage} | data)
            group = str(row[args.by]) if args.by else ""
        except (KeyError, ValueError, RequestError) as exc:
            raise ValueError(f"{args.data}, row {number}: {exc}") from exc
        decision = evaluator.evaluate(request)
        flagged = decision.outcome.label.upper() in flag
        for key in {"", group}:
            counts = groups.setdefault(key, Counts())
            counts.errors += bool(decision.errors)
            counts.add(label, flagged)
    return groups


def render(counts: Counts) -> str:
    m = counts.metrics()
    width = max(len(str(v)) for v in (counts.tp, counts.fp, counts.fn, counts.tn, 7))
    lines = [
        f"{'':<10} {'flagged':>{width}} {'passed':>{width}}",
        f"{'positive':<10} {counts.tp:>{width}} {counts.fn:>{width}}",
        f"{'negative':<10} {counts.fp:>{width}} {counts.tn:>{width}}",
        "  ".join(f"{k} {'n/a' if v is None else f'{v:.4f}'}" for k, v in m.items()),
    ]
    if counts.errors:
        lines.append(f"{counts.errors} row(s) had detector errors (decided by the error policy)")
    return "\n".join(lines)


def render_groups(groups: dict[str, Counts]) -> str:
    """One line per group: its rows, flagged positives and negatives, recall and FPR."""
    width = max(len(k) for k in groups)
    lines = []
    for key in sorted(k for k in groups if k):
        c, m = groups[key], groups[key].metrics()
        shown = "  ".join(f"{k} {'n/a' if m[k] is None else f'{m[k]:.4f}'}" for k in ("recall", "fpr"))
        lines.append(f"{key:<{width}}  {c.n:>5} rows  {shown}")
    return "\n".join(lines)


def gate(counts: Counts, args: argparse.Namespace) -> list[str]:
    """What misses ``--max-fpr`` or ``--min-recall`` (nothing: the gate passes)."""
    m = counts.metrics()
    failed = []
    if args.max_fpr is not None and m["fpr"] is not None and m["fpr"] > args.max_fpr:
        failed.append(f"false-positive rate {m['fpr']:.4f} is above --max-fpr {args.max_fpr}")
    if args.min_recall is not None and m["recall"] is not None and m["recall"] < args.min_recall:
        failed.append(f"recall {m['recall']:.4f} is below --min-recall {args.min_recall}")
    return failed


def cmd_score(args: argparse.Namespace) -> int:
    """Score a ruleset or a detector on a labelled JSONL or CSV file: confusion matrix, recall, FPR."""
    try:
        groups = score(evaluator_for(args.target, args.stage), args)
    except CompileError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"cannot score: {exc}", file=sys.stderr)
        return 2
    counts = groups[""]
    if args.format == "json":
        by = {k: c.metrics() | {"n": c.n} for k, c in groups.items() if k}
        cells = {"tp": counts.tp, "fp": counts.fp, "fn": counts.fn, "tn": counts.tn, "errors": counts.errors}
        print(json.dumps(cells | counts.metrics() | ({"by": by} if by else {})))
    else:
        print(render(counts) + ("\n" + render_groups(groups) if len(groups) > 1 else ""))
    failed = gate(counts, args)
    for reason in failed:
        print(f"gate failed: {reason} ({args.data})", file=sys.stderr)
    return 3 if failed else 0


def register(sub: Any) -> None:
    """Add `palisade score` to the command line's subcommands."""
    parser = sub.add_parser("score", help=cmd_score.__doc__)
    parser.add_argument(
        "target",
        help="a ruleset file (.pal) or a detector call, e.g. 'classifier(model: \"prompt-injection\")'",
    )
    parser.add_argument(
        "--data", required=True, help="labelled rows: .jsonl (one JSON object a line) or .csv"
    )
    parser.add_argument(
        "--stage", default="input", choices=[s.value for s in Stage], help="the stage of every row"
    )
    parser.add_argument("--text-field", default="text", help="the column with the text (default: text)")
    parser.add_argument("--label-field", default="label", help="the column with 1/0 labels (default: label)")
    parser.add_argument("--flag", default="block,escalate", help="outcomes that count as flagged (a ruleset)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--by", default="", help="a row field to report recall and FPR by (e.g. kind)")
    parser.add_argument(
        "--max-fpr", type=float, default=None, help="exit 3 if the false-positive rate is above this"
    )
    parser.add_argument("--min-recall", type=float, default=None, help="exit 3 if recall is below this")
    parser.set_defaults(func=cmd_score)
