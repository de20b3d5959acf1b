"""`palisade diff`: what a candidate ruleset decides differently from a base, on a file of requests.

The requests are JSON Lines, one a line, in any of three forms:

- a request object, as `palisade ask --request` takes it (the trace format a gateway writes:
  ``{"stage": "input", "messages": [...], "principal": {...}, "tool": {...}}``; ``ruleset`` and
  ``version`` keys are ignored);
- a labelled row, ``{"request": {...}, "label": ...}`` (rulesets/*.traffic.jsonl);
- an audit record, as `palisade audit export` writes it: a decision of a ruleset that keeps excerpts
  (`audit excerpts N`) becomes a request of its stage, principal and masked excerpt; records without
  an excerpt, and records of other kinds, are skipped and counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dsl.compiler import compile_file
from dsl.diagnostics import CompileError
from engine.audit.events import deciding_rules
from engine.cli.score import rows
from engine.runtime.evaluator import Evaluator
from engine.runtime.registry import SOURCE_SUFFIX, compile_rulesets
from engine.runtime.request import Request, RequestError, request_from_dict

MAX_ROWS = 1_000_000
_IGNORED = frozenset({"ruleset", "version"})


class DiffError(ValueError):
    """The rulesets or the requests cannot be read; the message names the file and row."""


@dataclass
class Diff:
    """What changed between two rulesets on a set of requests."""

    base: str
    candidate: str
    requests: int = 0
    skipped: int = 0  # rows with nothing to evaluate (audit records without an excerpt, other kinds)
    transitions: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    changed: list[dict[str, Any]] = field(default_factory=list)

    def data(self, limit: int) -> dict[str, Any]:
        return {
            "base": self.base,
            "candidate": self.candidate,
            "requests": self.requests,
            "skipped": self.skipped,
            "changed": len(self.changed),
            "transitions": dict(self.transitions.most_common()),
            "by_rule": dict(self.by_rule.most_common()),
            "requests_changed": self.changed[:limit],
        }


def load_evaluator(spec: str, rulesets: str, name: str) -> Evaluator:
    """A ruleset file, or a version (VERSION or NAME@VERSION) of ruleset ``name`` in ``rulesets``."""
    if spec.endswith(SOURCE_SUFFIX) or os.path.isfile(spec):
        return Evaluator(compile_file(spec))
    named, _, version = spec.rpartition("@")
    graph = compile_rulesets(rulesets).get((named or name, version))
    if graph is None:
        raise DiffError(f"{rulesets}: no ruleset {named or name} version {version!r}")
    return Evaluator(graph)


def requests(path: str) -> Iterator[Request | None]:
    """The requests of ``path`` (None for a row with nothing to evaluate). Raises DiffError."""
    for number, row in enumerate(rows(path), 1):
        if number > MAX_ROWS:
            raise DiffError(f"{path}: more than {MAX_ROWS} rows")
        try:
            yield _request(row)
        except (RequestError, TypeError, KeyError, AttributeError) as exc:
            raise DiffError(f"{path}, row {number}: {exc}") from exc


def _request(row: Any) -> Request | None:
    if not isinstance(row, dict):
        raise TypeError("a row must be a JSON object")
    if "request" in row:
        return request_from_dict(row["request"])
    if "decision_id" in row:  # an audit record
        excerpt = row.get("excerpt")
        if row.get("kind") is not None or not excerpt or not excerpt.get("parts"):
            return None
        return _from_excerpt(row, excerpt["parts"])
    return request_from_dict({k: v for k, v in row.items() if k not in _IGNORED})


def _from_excerpt(record: dict[str, Any], parts: list[dict[str, Any]]) -> Request:
    messages = [{"role": p["role"], "content": p["text"]} for p in parts if p["source"] == "message"]
    text = "".join(p["text"] for p in parts if p["source"] == "text")
    tool = record.get("tool")
    data: dict[str, Any] = {"stage": record["stage"], "principal": record["principal"]}
    data |= {"messages": messages} if messages else {"text": text}
    if tool is not None:
        data["tool"] = {"name": tool["name"], "server": tool["server"]}
    return request_from_dict(data)


def diff(base: Evaluator, candidate: Evaluator, path: str) -> Diff:
    """Evaluate every request of ``path`` with both rulesets and collect what changed."""
    result = Diff(_named(base), _named(candidate))
    for number, request in enumerate(requests(path), 1):
        if request is None:
            result.skipped += 1
            continue
        result.requests += 1
        was, now = base.evaluate(request), candidate.evaluate(request)
        before, after = deciding_rules(was), deciding_rules(now)
        if was.outcome == now.outcome and before == after:
            continue
        transition = f"{was.outcome.label.upper()}->{now.outcome.label.upper()}"
        result.transitions[transition] += 1
        result.by_rule.update(set(before) ^ set(after) or {"(same rules, other outcome)"})
        result.changed.append(
            {"row": number, "transition": transition, "base_rules": before, "candidate_rules": after}
        )
    return result


def _named(evaluator: Evaluator) -> str:
    graph = evaluator.graph
    return f"{graph.name} {graph.version} ({graph.content_hash[:16]})"


def render(result: Diff, limit: int) -> str:
    lines = [
        f"base      {result.base}",
        f"candidate {result.candidate}",
        f"{result.requests} request(s), {len(result.changed)} changed"
        + (f", {result.skipped} row(s) skipped (nothing to evaluate)" if result.skipped else ""),
    ]
    lines += [f"  {key:<22} {count:>6}" for key, count in result.transitions.most_common()]
    lines += ["by rule:"] * bool(result.by_rule)
    lines += [f"  {rule:<30} {count:>6}" for rule, count in result.by_rule.most_common()]
    for change in result.changed[:limit]:
        rules = f"{change['base_rules'] or ['(default)']} -> {change['candidate_rules'] or ['(default)']}"
        lines.append(f"row {change['row']}: {change['transition']}  {rules}")
    return "\n".join(lines)


def cmd_diff(args: argparse.Namespace) -> int:
    """Evaluate a base and a candidate ruleset on a JSONL file of requests; print what changes."""
    try:
        candidate = load_evaluator(args.candidate, args.rulesets, "")
        base = load_evaluator(args.base, args.rulesets, candidate.graph.name)
        result = diff(base, candidate, args.data)
    except CompileError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # DiffError, a row that is not JSON
        print(f"palisade diff: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(result.data(args.show), indent=2) if args.format == "json" else render(result, args.show)
    )
    return 0


def register(sub: Any) -> None:
    """Add `palisade diff` to the command line's subcommands."""
    parser = sub.add_parser("diff", help=cmd_diff.__doc__, description=cmd_diff.__doc__)
    parser.add_argument("--base", required=True, help="a .pal file, or a VERSION of the candidate's ruleset")
    parser.add_argument("--candidate", required=True, help="the .pal file of the change")
    parser.add_argument("--data", required=True, help="JSON Lines of requests (see `palisade diff` docs)")
    parser.add_argument("--rulesets", default="rulesets", help="where --base VERSION is looked up")
    parser.add_argument("--show", type=int, default=20, help="requests that changed to list (default 20)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.set_defaults(func=cmd_diff)
