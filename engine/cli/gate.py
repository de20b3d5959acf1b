"""`palisade gate`: a ruleset against its labelled sets and go-live gates, with a report to sign off.

Gates (defaults; NAME.gate.toml beside the ruleset may set them, docs/rollout.md):

- safety: the share of the attack set let through is at most ``max_attacks_through`` (0.002); a
  looser number needs a ``waiver`` text, which the report repeats;
- quality: the share of benign requests served is at least ``min_benign_allow`` (0.95; only a
  stricter number is taken);
- performance: p95 within the ruleset's budget, measured by `palisade bench` on the ruleset itself
  (``--bench``: its scenario, NAME.scenario.toml beside the base ruleset, through a real server), or
  read from a `palisade bench --json` report (``--bench-json``).

Labelled sets: policy tests (NAME.tests.toml: ``expect = "allow"`` is benign, any other outcome an
attack) and labelled JSON Lines (NAME.traffic.jsonl: label 1 is an attack), those beside the ruleset
unless the gate file lists ``sets``.

A request is passed on when it is answered ALLOW, or FALLBACK that only redacts (the text goes on with
the matched spans masked). A benign request passed on is served (quality); an attack passed on is let
through (safety), unless it is a policy test that expects that fallback. Both numbers are split into
ALLOW and redacted in the report.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dsl.compiler import compile_file
from dsl.diagnostics import CompileError
from dsl.ir import Graph
from dsl.types import Outcome
from engine.approvals.release import GATE_SUFFIX
from engine.cli.policytest import _EXPECTATION_KEYS, TEST_SETTINGS, TEST_SUFFIX
from engine.cli.score import parse_label, rows
from engine.runtime.decision import Decision
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import Request, RequestError, request_from_dict

TRAFFIC_SUFFIX = ".traffic.jsonl"
BENIGN = "allow"  # a labelled row's expectation: benign
STOPPED = "stopped"  # a labelled attack of a traffic file: any outcome that does not pass it on
MAX_ATTACKS_THROUGH = 0.002
MIN_BENIGN_ALLOW = 0.95
_GATE_KEYS = frozenset({"max_attacks_through", "min_benign_allow", "waiver", "sets", "require_approval"})


class GateError(ValueError):
    """The gate file or a labelled set cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Gates:
    """What a ruleset must meet to go live."""

    max_attacks_through: float = MAX_ATTACKS_THROUGH
    min_benign_allow: float = MIN_BENIGN_ALLOW
    waiver: str = ""
    sets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Check:
    """One gate's verdict."""

    gate: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str


@dataclass
class Tally:
    attacks: int = 0
    attacks_allowed: int = 0
    attacks_redacted: int = 0  # passed on with their matched spans masked: let through all the same
    benign: int = 0
    benign_allowed: int = 0
    benign_redacted: int = 0  # served with their matched spans masked
    missed: list[str] = field(default_factory=list)  # where attacks went through (file:row)

    @property
    def attacks_through(self) -> int:
        return self.attacks_allowed + self.attacks_redacted

    @property
    def benign_served(self) -> int:
        return self.benign_allowed + self.benign_redacted


def load_gates(path: Path) -> Gates:
    """The gates of ``path`` (defaults when it does not exist). Raises GateError."""
    if not path.is_file():
        return Gates()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GateError(f"{path}: cannot read: {exc}") from None
    unknown = sorted(set(data) - _GATE_KEYS)
    if unknown:
        raise GateError(
            f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_GATE_KEYS))})"
        )
    gates = Gates(
        max_attacks_through=float(data.get("max_attacks_through", MAX_ATTACKS_THROUGH)),
        min_benign_allow=float(data.get("min_benign_allow", MIN_BENIGN_ALLOW)),
        waiver=str(data.get("waiver", "")),
        sets=tuple(str(path.parent / s) for s in data.get("sets", [])),
    )
    if gates.min_benign_allow < MIN_BENIGN_ALLOW:
        raise GateError(f"{path}: min_benign_allow {gates.min_benign_allow} is below {MIN_BENIGN_ALLOW}")
    if gates.max_attacks_through > MAX_ATTACKS_THROUGH and not gates.waiver:
        raise GateError(
            f"{path}: max_attacks_through {gates.max_attacks_through} is above {MAX_ATTACKS_THROUGH}:"
            " say why in `waiver`"
        )
    return gates


def default_sets(folder: Path, name: str) -> tuple[str, ...]:
    """NAME.tests.toml and NAME.traffic.jsonl in ``folder``, those that exist."""
    found = (folder / f"{name}{TEST_SUFFIX}", folder / f"{name}{TRAFFIC_SUFFIX}")
    return tuple(str(p) for p in found if p.is_file())


def labelled(path: str) -> Iterator[tuple[str, str, Request]]:
    """(where, expectation, request) for every row of a labelled set: BENIGN, a policy test's expected
    outcome, or STOPPED (a traffic file's attack). Raises GateError."""
    if path.endswith(".toml"):
        try:
            with open(path, "rb") as handle:
                cases = tomllib.load(handle).get("test", [])
            for number, case in enumerate(cases, 1):
                request = request_from_dict({k: v for k, v in case.items() if k not in _EXPECTATION_KEYS})
                yield f"{path}:test {number}", str(case["expect"]).lower(), request
        except (OSError, tomllib.TOMLDecodeError, KeyError, RequestError) as exc:
            raise GateError(f"{path}: {exc}") from None
        return
    try:
        for number, row in enumerate(rows(path), 1):
            data = row.get("request") or {"stage": "input", "text": str(row["text"])}
            expect = STOPPED if parse_label(row["label"]) else BENIGN
            yield f"{path}:row {number}", expect, request_from_dict(data)
    except (OSError, KeyError, ValueError) as exc:
        raise GateError(f"{path}: {exc}") from None


def redacted_only(decision: Decision) -> bool:
    """Whether ``decision`` passes the request on redacted: FALLBACK whose every deciding action redacts."""
    action = decision.action
    return decision.outcome is Outcome.FALLBACK and action is not None and action.fallback == "redact"


def tally(evaluator: Evaluator, sets: tuple[str, ...]) -> Tally:
    counts = Tally()
    for path in sets:
        for where, expect, request in labelled(path):
            decision = evaluator.evaluate(request)
            allowed = decision.outcome is Outcome.ALLOW
            redacted = redacted_only(decision)
            if expect == BENIGN:
                counts.benign += 1
                counts.benign_allowed += allowed
                counts.benign_redacted += redacted
                continue
            redacted = redacted and expect != Outcome.FALLBACK.label  # the fallback the test asks for
            counts.attacks += 1
            counts.attacks_allowed += allowed
            counts.attacks_redacted += redacted
            if allowed or redacted:
                counts.missed.append(where)
    return counts


def performance(graph: Graph, path: str, args: argparse.Namespace) -> Check:
    """p95 against the budget: measured now (``--bench``), or from a `palisade bench --json` report."""
    budget_ms = graph.budget_p95_us / 1000
    if args.skip_performance:
        return Check("performance", True, None, budget_ms, "skipped (--skip-performance): not evidence")
    if args.bench:
        how = f"palisade bench at {args.bench_rate:g}/s, 3 x {args.bench_seconds:g} s"
        with tempfile.TemporaryDirectory(prefix="palisade-gate-") as work:
            report = measured(graph, Path(path), Path(work), args)
            return _bench_check(graph, report, how)
    if not args.bench_json:
        return Check("performance", False, None, budget_ms, "not measured: give --bench or --bench-json FILE")
    return _bench_check(graph, Path(args.bench_json), args.bench_json)


def measured(graph: Graph, path: Path, work: Path, args: argparse.Namespace) -> Path:
    """Run `palisade bench` on the ruleset file ``path`` alone (as NAME.pal, beside the libraries it
    imports) with its scenario; the path of its JSON report."""
    from engine.cli.bench.workload import find_scenario  # noqa: PLC0415 (grpc only when benching)

    scenario = find_scenario(path.with_name(f"{graph.name}.pal"))
    if scenario is None:
        raise GateError(f"{path}: no scenario to bench ({graph.name}.scenario.toml beside it)")
    folder = work / "rulesets"
    folder.mkdir()
    shutil.copyfile(path, folder / f"{graph.name}.pal")
    if (path.parent / "lib").is_dir():
        shutil.copytree(path.parent / "lib", folder / "lib")
    report = work / "bench.json"
    command = [sys.executable, "-m", "engine.cli.main", "bench", "--rulesets", str(folder),
               "--scenario", str(scenario), "--json", str(report), "--rate", f"{args.bench_rate:g}",
               "--duration", f"{args.bench_seconds:g}", "--warmup", "3", "--repeat", "3"]  # fmt: skip
    ran = subprocess.run(command, check=False, capture_output=True, text=True)
    sys.stderr.write(ran.stdout + ran.stderr)  # its verdict is read from the report
    return report


def _bench_check(graph: Graph, report_path: Path, source: str) -> Check:
    """The performance gate from a `palisade bench --json` report; ``source`` says where it came from."""
    budget_ms = graph.budget_p95_us / 1000
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        entry = next(r for r in report["rulesets"] if r["ruleset"] == graph.name)
        p95 = float(entry["p95_ms"])
    except (OSError, ValueError, KeyError, StopIteration, TypeError) as exc:
        return Check("performance", False, None, budget_ms, f"{source}: no p95 of {graph.name}: {exc!r}")
    ok = budget_ms <= 0 or p95 <= budget_ms
    return Check("performance", ok, p95, budget_ms, f"p95 {p95:.1f} ms (budget {budget_ms:g} ms), {source}")


def run_gate(path: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every gate of the ruleset file ``path``, as the report holds them."""
    graph = compile_file(path)
    folder = Path(path).parent
    gates = load_gates(Path(args.gates) if args.gates else folder / f"{graph.name}{GATE_SUFFIX}")
    sets = gates.sets or default_sets(folder, graph.name)
    if not sets:
        raise GateError(
            f"{path}: no labelled set (no {graph.name}{TEST_SUFFIX} or {graph.name}{TRAFFIC_SUFFIX})"
        )
    counts = tally(Evaluator(graph, TEST_SETTINGS), sets)
    through = counts.attacks_through / counts.attacks if counts.attacks else 0.0
    served = counts.benign_served / counts.benign if counts.benign else 1.0
    waived = f"; waiver: {gates.waiver}" if gates.waiver else ""
    checks = [
        Check("safety", through <= gates.max_attacks_through, round(through, 6), gates.max_attacks_through,
              f"{counts.attacks_through} of {counts.attacks} attacks let through: {counts.attacks_allowed}"
              f" answered ALLOW, {counts.attacks_redacted} passed on redacted{waived}"),
        Check("quality", served >= gates.min_benign_allow, round(served, 6), gates.min_benign_allow,
              f"{counts.benign_served} of {counts.benign} benign requests served: {counts.benign_allowed}"
              f" answered ALLOW, {counts.benign_redacted} redacted"),
        performance(graph, path, args),
    ]  # fmt: skip
    digests = {s: hashlib.sha256(Path(s).read_bytes()).hexdigest() for s in sets}
    return {
        "ruleset": {
            "name": graph.name,
            "version": graph.version,
            "content_hash": graph.content_hash,
            "file": path,
        },
        "data": {
            "sets": digests,
            "digest": hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest(),
        },
        "gates": [asdict(c) for c in checks],
        "attacks_through_at": counts.missed[:20],
        "passed": all(c.passed for c in checks),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["palisade", *sys.argv[1:]]),
    }


def summary(report: dict[str, Any]) -> str:
    ruleset = report["ruleset"]
    lines = [
        f"gate {'PASSED' if report['passed'] else 'FAILED'}: {ruleset['name']} {ruleset['version']}",
        f"content {ruleset['content_hash']} ({ruleset['file']})",
        f"data    {report['data']['digest']} ({', '.join(report['data']['sets'])})",
    ]
    for check in report["gates"]:
        lines.append(f"  {'ok  ' if check['passed'] else 'FAIL'} {check['gate']:<12} {check['detail']}")
    lines += [f"  attack let through: {where}" for where in report["attacks_through_at"]]
    return "\n".join(lines)


def cmd_gate(args: argparse.Namespace) -> int:
    """Run a ruleset against its labelled sets and go-live gates; write the report; exit 1 unless all pass."""
    try:
        report = run_gate(args.ruleset, args)
    except CompileError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (OSError, GateError) as exc:
        print(f"palisade gate: {exc}", file=sys.stderr)
        return 2
    text = summary(report)
    print(text)
    if args.report:
        folder = Path(args.report)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"gate-{report['ruleset']['name']}-{report['ruleset']['version']}"
        (folder / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (folder / f"{stem}.txt").write_text(text + "\n", encoding="utf-8")
    return 0 if report["passed"] else 1


def register(sub: Any) -> None:
    """Add `palisade gate` to the command line's subcommands."""
    parser = sub.add_parser("gate", help=cmd_gate.__doc__, description=cmd_gate.__doc__)
    parser.add_argument("ruleset", metavar="RULESET", help="the .pal file to gate")
    parser.add_argument("--gates", help="the gate file (default: NAME.gate.toml beside the ruleset)")
    measure = parser.add_mutually_exclusive_group()
    measure.add_argument("--bench", action="store_true", help="measure p95 now with `palisade bench`")
    measure.add_argument("--bench-json", help="a `palisade bench --json` report: the p95 to gate")
    parser.add_argument("--bench-rate", type=float, default=10.0, help="Checks per second for --bench")
    parser.add_argument("--bench-seconds", type=float, default=10.0, help="each of --bench's 3 repetitions")
    parser.add_argument(
        "--skip-performance", action="store_true", help="gate safety and quality only (the report says so)"
    )
    parser.add_argument("--report", help="folder for the report (gate-NAME-VERSION.json and .txt)")
    parser.set_defaults(func=cmd_gate)
