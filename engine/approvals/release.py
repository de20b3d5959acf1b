"""Policy-change approvals: whether a ruleset version may answer, for `palisade rollout` and the server."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

from dsl.ir import Graph
from engine.approvals.model import Approval, State
from engine.audit.events import answered_before
from engine.audit.store import Store
from engine.runtime.rollout import Plan

GATE_SUFFIX = ".gate.toml"  # NAME.gate.toml beside the rulesets: go-live gates and `require_approval`
APPROVAL_RULE = "rollout"  # the rule name of a policy-change approval; its binding is the content hash
APPROVAL_QUEUE = "policy-change"
ANSWERING = ("active", "canary")  # the plan's roles that answer Checks (a shadow never does)

# (binding, ruleset, rule) -> the newest approval of it: ApprovalStore.latest, Approvals.latest
Latest = Callable[[str, str, str], Approval | None]


class Unapproved(ValueError):
    """A ruleset version may not answer: it needs an approval on its content hash that it lacks, or its
    gate file cannot say whether it does. The message names the ruleset, version, hash and what is missing."""


def requires_approval(rulesets: str | Path, name: str) -> bool:
    """Whether NAME.gate.toml beside the rulesets says `require_approval = true`. Raises Unapproved when
    the file cannot be read (fail closed: an unreadable file does not waive the approval)."""
    folder = Path(rulesets) if Path(rulesets).is_dir() else Path(rulesets).parent
    gate = folder / f"{name}{GATE_SUFFIX}"
    if not gate.is_file():
        return False
    try:
        with open(gate, "rb") as handle:
            return bool(tomllib.load(handle).get("require_approval", False))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise Unapproved(f"{gate}: cannot read whether {name} needs approvals: {exc}") from None


def release_approval(graph: Graph, latest: Latest, records: Store | None) -> str:
    """The id of the approved approval on ``graph``'s content hash that lets it answer, else "" when it
    answered before (a rollout record in ``records``, the audit log, put that hash live: rolling back
    is never blocked on an approver). Raises Unapproved. Callers ask only where the gate file requires
    an approval (requires_approval)."""
    approval = latest(graph.content_hash, graph.name, APPROVAL_RULE)
    if approval is not None and approval.state is State.APPROVED:
        return approval.id
    if records is not None and answered_before(records, graph.name, graph.content_hash):
        return ""
    state = "none was requested" if approval is None else f"approval {approval.id} is {approval.state}"
    raise Unapproved(
        f"{graph.name} {graph.version} (content {graph.content_hash}) needs an approval before it may"
        f" answer: {state} (palisade rollout request, then palisade approvals approve)"
    )


def check_released(
    plans: Mapping[str, Plan],
    graphs: Mapping[tuple[str, str], Graph],
    rulesets: str | Path,
    latest: Latest,
    records: Store | None,
) -> None:
    """Raise Unapproved, naming the plan and role, for the first version that ``plans`` make answer
    (active or canary) without the approval its ruleset requires. Versions the plans leave implicit
    (no ``active``: the highest loaded) are what serves with no plan, and are not asked about."""
    for name, plan in sorted(plans.items()):
        versions = [(role, getattr(plan, role)) for role in ANSWERING if getattr(plan, role)]
        if not versions or not requires_approval(rulesets, name):
            continue
        for role, version in versions:
            try:
                release_approval(graphs[(name, version)], latest, records)
            except Unapproved as exc:
                raise Unapproved(f"rollout: {name}.{role}: {exc}") from None
