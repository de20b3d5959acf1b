"""Policy-change approvals: whether a ruleset version may answer, for `palisade rollout` and the server."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dsl.ir import Graph
from engine.approvals.model import Approval, State
from engine.audit.events import answered_before
from engine.audit.store import Store
from engine.runtime.rollout import Plan, version_key

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
    (active or canary) without the approval its ruleset requires. Where a plan names no ``active``
    version, ``releases`` picks the one that answers."""
    for name, plan in sorted(plans.items()):
        versions = [(role, getattr(plan, role)) for role in ANSWERING if getattr(plan, role)]
        if not versions or not requires_approval(rulesets, name):
            continue
        for role, version in versions:
            try:
                release_approval(graphs[(name, version)], latest, records)
            except Unapproved as exc:
                raise Unapproved(f"rollout: {name}.{role}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Release:
    """Which version of a ruleset that requires approvals answers where its plan names no ``active``:
    the highest that may (approved, or answered before), and the higher ones loaded that await an
    approval. ``first``: no version of it ever answered or was approved and one alone is loaded, so
    it goes live now and its rollout record vouches for it from then on (the bootstrap).
    ``answers`` is None when several are loaded and none of them may answer."""

    name: str
    answers: Graph | None
    awaiting: tuple[Graph, ...]
    first: bool = False

    def refusal(self) -> str:
        """Why no version answers (when ``answers`` is None), and the commands that let one."""
        versions = ", ".join(graph.version for graph in self.awaiting)
        return (
            f"rollout: {self.name}: no version may answer: {versions} are loaded and none is approved or"
            " answered before (palisade rollout request, then palisade approvals approve; or pick the"
            f" first: palisade rollout activate --ruleset {self.name} --version V --actor YOU)"
        )


def releases(
    plans: Mapping[str, Plan],
    graphs: Mapping[tuple[str, str], Graph],
    rulesets: str | Path,
    latest: Latest,
    records: Store | None,
) -> dict[str, Release]:
    """Per ruleset whose gate file requires approvals and whose plan names no ``active`` version: the
    Release that says which version answers. Raises Unapproved when a gate file cannot be read."""
    by_name: dict[str, list[Graph]] = {}
    for (name, _), graph in sorted(graphs.items()):
        by_name.setdefault(name, []).append(graph)
    found: dict[str, Release] = {}
    for name, versions in by_name.items():
        plan = plans.get(name)
        if (plan is not None and plan.active) or not requires_approval(rulesets, name):
            continue
        newest_first = sorted(versions, key=lambda graph: version_key(graph.version), reverse=True)
        found[name] = _release(name, newest_first, latest, records)
    return found


def _release(name: str, newest_first: list[Graph], latest: Latest, records: Store | None) -> Release:
    for index, graph in enumerate(newest_first):
        try:
            release_approval(graph, latest, records)
        except Unapproved:
            continue
        return Release(name, graph, tuple(newest_first[:index]))
    if len(newest_first) == 1:
        return Release(name, newest_first[0], (), first=True)
    return Release(name, None, tuple(newest_first))
