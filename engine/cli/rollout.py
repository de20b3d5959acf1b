"""`palisade rollout ...` and `palisade shadow report`: which ruleset version answers, with evidence."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from dsl.diagnostics import CompileError
from dsl.ir import Graph
from engine.approvals import Approval, Approvals, ApprovalStore
from engine.approvals.model import State, now_us
from engine.approvals.release import (
    APPROVAL_QUEUE,
    APPROVAL_RULE,
    Latest,
    Unapproved,
    release_approval,
    releases,
    requires_approval,
)
from engine.audit import AuditConfig, AuditError, AuditLog, AuditPaths
from engine.audit.events import SHADOW_KIND, rollout_entry
from engine.audit.record import Entry
from engine.audit.store import Filters, Store
from engine.runtime.ids import new_id
from engine.runtime.registry import compile_rulesets
from engine.runtime.rollout import Plan, RolloutError, load_plans, rollout_path, save_plans

APPROVAL_DAYS = 7


class RolloutRefused(Exception):
    """A rollout change is refused; the message says why."""


def cmd_status(args: argparse.Namespace) -> int:
    """Print the rollout plans (what a reload will serve) and, for each ruleset that requires approvals
    with no active version named, the version that answers and those that await an approval."""
    plans = load_plans(rollout_path(args.data_dir))
    shown = {name: plan.data() for name, plan in plans.items()}
    if os.path.exists(args.rulesets):
        with _released(args) as (latest, records):
            found = releases(plans, _compiled(args), args.rulesets, latest, records)
        for name, release in found.items():
            shown[name] = shown.get(name, Plan().data()) | {
                "answers": None if release.answers is None else release.answers.version,
                "awaiting_approval": [graph.version for graph in release.awaiting],
            }
    print(json.dumps(shown, indent=2))
    return 0


def cmd_request(args: argparse.Namespace) -> int:
    """Open an approval for putting a ruleset version live (approvers answer it: `palisade approvals`)."""
    graph = _graph(args, args.version)
    approval = Approval(
        id=new_id(),
        queue=APPROVAL_QUEUE,
        state=State.PENDING,
        ruleset=graph.name,
        version=graph.version,
        rule=APPROVAL_RULE,
        reason=f"put {graph.name} {graph.version} live (content {graph.content_hash})",
        binding=graph.content_hash,
        stage="policy",
        principal_id=args.actor,
        tenant="",
        tool="",
        created_us=now_us(),
        deadline_us=now_us() + APPROVAL_DAYS * 86_400_000_000,
        single_use=False,
    )
    with AuditLog.open(args.data_dir, AuditConfig()) as audit:
        store = ApprovalStore.open(args.data_dir)
        try:
            opened = Approvals(store, audit).open(approval, "")
        finally:
            store.close()
        audit.submit(_entry(args, "request", graph, load_plans(rollout_path(args.data_dir))))
    print(opened.id)
    return 0


def cmd_change(args: argparse.Namespace) -> int:
    """Change a ruleset's plan (activate, shadow or canary), record who did it, and reload the server."""
    path = rollout_path(args.data_dir)
    plans = load_plans(path)
    graph = _graph(args, args.version) if args.version else None
    before = plans.get(args.ruleset, Plan())
    after = _changed(args, before, graph)
    approval = _approval(args, graph, before) if args.event in {"activate", "canary"} and graph else ""
    save_plans(path, plans | {args.ruleset: after})
    try:
        with AuditLog.open(args.data_dir, AuditConfig()) as audit:
            audit.submit(_entry(args, args.event, graph, plans | {args.ruleset: after}, approval))
    except AuditError:
        save_plans(path, plans)  # no evidence, no change
        raise
    print(f"{args.ruleset}: {json.dumps(after.data())}")
    if args.reload:
        os.kill(args.reload, signal.SIGHUP)
        print(f"sent SIGHUP to {args.reload}")
    return 0


def _changed(args: argparse.Namespace, plan: Plan, graph: Graph | None) -> Plan:
    version = "" if graph is None else graph.version
    revision = plan.revision + 1
    if args.event == "activate":
        if graph is None:
            raise RolloutRefused("activate needs --version")
        canary = "" if plan.canary == version else plan.canary
        percent = plan.canary_percent if canary else 0.0
        return replace(plan, active=version, canary=canary, canary_percent=percent, revision=revision)
    if args.event == "shadow":
        return replace(plan, shadow=version, revision=revision)
    if graph is not None and not 0 < args.percent <= 100:
        raise RolloutRefused(f"--percent {args.percent}: a canary share is in (0, 100]")
    return replace(plan, canary=version, canary_percent=args.percent if graph else 0.0, revision=revision)


def _approval(args: argparse.Namespace, graph: Graph, before: Plan) -> str:
    """The approval this version goes live on ("" when none is required), or Unapproved: the check
    the server makes of every plan it loads (engine/approvals/release.py), and one more exemption
    that only a change can claim while the plan names no active version: the version answering now,
    or any version where none may (several loaded, none ever approved or answered: the first pick)."""
    if not requires_approval(args.rulesets, graph.name):
        return ""
    with _released(args) as (latest, records):
        try:
            return release_approval(graph, latest, records)
        except Unapproved:
            if before.active:
                raise
            graphs = {key: g for key, g in _compiled(args).items() if key[0] == graph.name}
            answers = releases({}, graphs, args.rulesets, latest, records)[graph.name].answers
            if answers is not None and answers.content_hash != graph.content_hash:
                raise
            return ""


@contextmanager
def _released(args: argparse.Namespace) -> Iterator[tuple[Latest, Store | None]]:
    """The approvals and the audit log (None when it has no database yet) that say what may answer."""
    database = AuditPaths.of(args.data_dir).database
    records = Store.open_reader(database) if database.is_file() else None
    store = ApprovalStore.open(args.data_dir)
    try:
        yield store.latest, records
    finally:
        store.close()
        if records is not None:
            records.close()


def _compiled(args: argparse.Namespace) -> dict[tuple[str, str], Graph]:
    try:
        return compile_rulesets(args.rulesets)
    except CompileError as exc:
        raise RolloutRefused(
            f"{args.rulesets}: {len(exc.diagnostics)} error(s) in the rulesets\n{exc}"
        ) from exc


def _graph(args: argparse.Namespace, version: str) -> Graph:
    graphs = _compiled(args)
    graph = graphs.get((args.ruleset, version))
    if graph is None:
        loaded = ", ".join(v for n, v in sorted(graphs) if n == args.ruleset) or "none"
        raise RolloutRefused(f"{args.rulesets}: no {args.ruleset} version {version!r} (loaded: {loaded})")
    return graph


def _entry(
    args: argparse.Namespace, event: str, graph: Graph | None, plans: dict[str, Plan], approval: str = ""
) -> Entry:
    return rollout_entry(
        event,
        args.ruleset,
        plans.get(args.ruleset, Plan()),
        version="" if graph is None else graph.version,
        content_hash="" if graph is None else graph.content_hash,
        actor=args.actor,
        comment=args.comment,
        approval=approval,
    )


def shadow_report(store: Store, ruleset: str, since: str, examples: int = 3) -> dict[str, Any]:
    """How often a ruleset's shadow differed from the answer since ``since``: by outcome transition and
    by rule, with example decision ids, and the share of Checks shadowed."""
    offered = Counter[str]()
    transitions: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    shown: dict[str, list[str]] = {}
    shadowed, differing, rates = 0, 0, []
    for row in store.records(Filters(ruleset=ruleset, since=since)):
        data = json.loads(row.body)
        kind = data.get("kind")
        if kind is None and "shadow" in data.get("rollout", {}):
            offered[data["rollout"]["shadow"]] += 1
        if kind != SHADOW_KIND:
            continue
        shadowed += 1
        rates.append(data["sample_rate"])
        if not data["differs"]:
            continue
        differing += 1
        answered, shadow = data["answered"], data["shadow"]
        key = f"{answered['outcome'].upper()}->{shadow['outcome'].upper()}"
        transitions[key] += 1
        by_rule.update(set(answered["rules"]) ^ set(shadow["rules"]) or {"(same rules)"})
        shown.setdefault(key, [])
        if len(shown[key]) < examples:
            shown[key].append(data["decision"])
    total = sum(offered.values())
    return {
        "ruleset": ruleset,
        "since": since,
        "offered": total,
        "shadowed": shadowed,
        "shadowed_share": round(shadowed / total, 4) if total else None,
        "sample_rate_now": float(rates[-1]) if rates else None,
        "differing": differing,
        "differing_share": round(differing / shadowed, 4) if shadowed else None,
        "transitions": dict(transitions.most_common()),
        "by_rule": dict(by_rule.most_common()),
        "examples": shown,
    }


def cmd_shadow_report(args: argparse.Namespace) -> int:
    """How often the shadow version's outcome or deciding rules differ from the answer, since --since."""
    store = Store.open_reader(AuditPaths.of(args.data_dir).database)
    try:
        report = shadow_report(store, args.ruleset, args.since)
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    share = report["shadowed_share"]
    print(
        f"{report['ruleset']} since {report['since']}: {report['shadowed']} of {report['offered']} Checks"
        f" shadowed ({'n/a' if share is None else f'{share:.1%}'};"
        f" sample rate now {report['sample_rate_now']})"
    )
    print(f"differing: {report['differing']}")
    for key, count in report["transitions"].items():
        print(f"  {key:<22} {count:>6}  e.g. {', '.join(report['examples'][key])}")
    for rule, count in report["by_rule"].items():
        print(f"  rule {rule:<30} {count:>6}")
    return 0


def _run(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(command(args))
        except (RolloutRefused, RolloutError, Unapproved, AuditError, OSError) as exc:
            print(f"palisade {args.command}: {exc}", file=sys.stderr)
            return 1

    return run


def register(sub: Any) -> None:
    """Add `palisade rollout` and `palisade shadow` to the command line's subcommands."""
    rollout = sub.add_parser("rollout", help="which ruleset version answers: activate, shadow, canary")
    commands = rollout.add_subparsers(dest="rollout_command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.add_argument(
            "--data-dir", default="data", help="the server's data directory (default: ./data)"
        )
        parser.add_argument(
            "--rulesets", default="rulesets", help="the server's rulesets (default: ./rulesets)"
        )
        return parser

    add("status", cmd_status.__doc__ or "").set_defaults(func=_run(cmd_status))
    for event, text in (
        ("request", cmd_request.__doc__ or ""),
        ("activate", "make VERSION the one that answers (a rollback is an activation too)"),
        ("shadow", "evaluate VERSION beside every answer, never enforcing (no --version: stop)"),
        ("canary", "let VERSION answer --percent of principals (no --version: stop)"),
    ):
        parser = add(event, text)
        parser.add_argument("--ruleset", required=True)
        parser.add_argument("--version", required=event in {"request", "activate"}, default="")
        parser.add_argument("--actor", required=True, help="who makes the change (recorded)")
        parser.add_argument("--comment", default="", help="why (recorded)")
        if event != "request":
            parser.add_argument("--reload", type=int, metavar="PID", help="send SIGHUP to the server then")
        if event == "canary":
            parser.add_argument("--percent", type=float, default=0.0, help="share of principals, (0, 100]")
        command = cmd_request if event == "request" else cmd_change
        parser.set_defaults(func=_run(command), event=event)

    shadow = sub.add_parser("shadow", help="what a shadow version would have decided")
    report = shadow.add_subparsers(dest="shadow_command", required=True).add_parser(
        "report", help=cmd_shadow_report.__doc__
    )
    report.add_argument("--ruleset", required=True)
    report.add_argument("--since", default="", help="RFC 3339 UTC time, e.g. 2025-01-01T00:00:00Z")
    report.add_argument("--data-dir", default="data", help="the server's data directory (default: ./data)")
    report.add_argument("--format", choices=["text", "json"], default="text")
    report.set_defaults(func=_run(cmd_shadow_report))
