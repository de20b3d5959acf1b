"""Records of policy rollout: which version answered a Check, shadow outcomes, and every rollout change.

A decision record of a ruleset under a rollout plan has ``rollout``: {role (active | canary | pinned),
revision (the plan's), shadow? (the shadow version it was offered to)}.

A shadow record (kind "shadow") follows a shadowed Check: v, seq, prev_hash, hash, time, decision_id
(its own id), kind, decision (the Check's decision id), outcome ("shadow:<the shadow's outcome>"),
ruleset {name, version, content_hash} (the shadow's), principal {id, tenant}, sample_rate (the share
of Checks shadowed when it was taken), answered and shadow: {version, outcome, rules} each, rules
being the deciding rules, and differs (true when outcome or rules differ).

A rollout record (kind "rollout") is one change of a plan: v, seq, prev_hash, hash, time,
decision_id (its own id), kind, event (request | activate | shadow | canary), outcome
("rollout:<event>"), actor ("palisade serve" when the server put a ruleset's first version live
itself: engine/guard.py), comment, ruleset {name, version, content_hash} (the version the change
is about), principal {id: the actor, tenant: ""}, plan {active, shadow, canary, canary_percent,
revision} (the plan in force after it), approval (the approval id it went live on, or "").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from engine.audit.record import SCHEMA_VERSION, Entry, entry_of, format_time
from engine.audit.store import Filters, Store
from engine.runtime.decision import Decision
from engine.runtime.ids import new_id
from engine.runtime.rollout import Plan, Role
from engine.runtime.shadow import ShadowJob

SHADOW_KIND = "shadow"
ROLLOUT_KIND = "rollout"
EVENTS = ("request", "activate", "shadow", "canary")
ANSWERING_EVENTS = ("activate", "canary")  # the changes that make a version answer Checks


def rollout_field(plan: Plan, role: Role, shadow: str) -> dict[str, Any]:
    """The ``rollout`` member of a decision record."""
    return {"role": role.value, "revision": plan.revision} | ({"shadow": shadow} if shadow else {})


def deciding_rules(decision: Decision) -> list[str]:
    """The rules whose outcome decided, in order (none when the default decided)."""
    return list(dict.fromkeys(m.rule for m in decision.deciding))


def shadow_entry(job: ShadowJob, shadow: Decision, at: datetime | None = None) -> Entry:
    """The record of ``job``'s shadow evaluation ``shadow``, beside the decision it shadows."""
    answered = _side(job.answered)
    shadowed = _side(shadow)
    principal = job.request.principal
    fields = {
        "v": SCHEMA_VERSION,
        "kind": SHADOW_KIND,
        "decision_id": new_id(),
        "decision": job.decision_id,
        "time": format_time(at or datetime.now(UTC)),
        "outcome": f"{SHADOW_KIND}:{shadow.outcome.label}",
        "ruleset": {"name": shadow.ruleset, "version": shadow.version, "content_hash": shadow.content_hash},
        "principal": {"id": principal.id, "tenant": principal.tenant},
        "sample_rate": f"{job.rate:.6f}",  # text: records hold no floats outside findings
        "answered": answered,
        "shadow": shadowed,
        "differs": answered["outcome"] != shadowed["outcome"] or answered["rules"] != shadowed["rules"],
    }
    return entry_of(fields, ruleset=shadow.ruleset, principal=principal.id, rules=())


def rollout_entry(
    event: str,
    name: str,
    plan: Plan,
    *,
    version: str,
    content_hash: str,
    actor: str,
    comment: str = "",
    approval: str = "",
) -> Entry:
    """The record of one rollout change by ``actor``: ``event`` about ``name`` ``version``; ``plan`` after."""
    fields = {
        "v": SCHEMA_VERSION,
        "kind": ROLLOUT_KIND,
        "decision_id": new_id(),
        "time": format_time(datetime.now(UTC)),
        "event": event,
        "outcome": f"{ROLLOUT_KIND}:{event}",
        "actor": actor,
        "comment": comment,
        "ruleset": {"name": name, "version": version, "content_hash": content_hash},
        "principal": {"id": actor, "tenant": ""},
        "plan": plan.data() | {"canary_percent": f"{plan.canary_percent:g}"},
        "approval": approval,
    }
    return entry_of(fields, ruleset=name, principal=actor, rules=())


def answered_before(store: Store, name: str, content_hash: str) -> bool:
    """Whether a rollout record made ``content_hash`` of ruleset ``name`` answer (an activation or a
    canary): the evidence that it went live once, through `palisade rollout`."""
    for event in ANSWERING_EVENTS:
        for row in store.records(Filters(ruleset=name, outcome=f"{ROLLOUT_KIND}:{event}")):
            if json.loads(row.body)["ruleset"]["content_hash"] == content_hash:
                return True
    return False


def _side(decision: Decision) -> dict[str, Any]:
    return {"version": decision.version, "outcome": decision.outcome.label, "rules": deciding_rules(decision)}
