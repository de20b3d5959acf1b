"""The audit record of one decision: what it holds (never raw content), its canonical form and its hash.

Schema version 1, one JSON object per decision (keys in canonical order):

    approval_id     the approval the caller resumed with, or ""
    decision_id     the id the response carries (UUIDv7)
    default_applied true when no rule matched and the ruleset's default decided
    detectors       [{node, kind, latency_us, error, models?}] every detector node that ran
    digests         {key_id, content, tool_args}: HMAC-SHA-256 (hex) of the content (UTF-8) and of the
                    canonical JSON of the tool arguments (null without a tool call); key_id names the key
    errors          [{source, code, message, rule}] failures that the error policy absorbed
    excerpt?        only when the ruleset declares `audit excerpts N`: {limit, parts, omitted, error};
                    parts [{source, role, text, length, truncated}] are the text, the messages (the
                    last 20; ``omitted`` counts those before) and the tool arguments, each with every
                    PII and secret replaced by <TYPE>, cut to ``limit`` characters; when masking
                    failed, ``error`` says why and ``parts`` is empty (no unmasked text, ever)
    findings        [{detector, type, score, start, end, models?}] offsets into the scanned text, never
                    the text
    hash            SHA-256 (hex) of the canonical JSON of this object without ``hash``
    latency_us      the evaluation's total time, whole microseconds
    matches         [{rule, arm, outcome, reason, from_error}] every rule that matched
    outcome         allow | fallback | escalate | block
    prev_hash       the hash of the record before (64 zeros for the first record ever written)
    principal       {id, tenant}
    request_id      the caller's request id, or ""
    ruleset         {name, version, content_hash}
    seq             the record's position in the log, from 1, without gaps
    skipped_rules   rules not evaluated because a more restrictive outcome had already won
    stage           input | output | tool_call | tool_result | retrieval
    time            when the decision was recorded: RFC 3339, UTC, microseconds ("...T12:00:00.000001Z")
    tool            {name, server} of a tool call, or null
    v               the schema version, 1

    rollout?        only for rulesets under a rollout plan: {role, revision, shadow?} (engine/audit/events.py)

Shadow evaluations and rollout changes are records of their own kinds (engine/audit/events.py).

``models?`` (the models findings come from, [{name, version}]: a classifier's catalogue name and
``sha256:<hex>`` of its ONNX file, presidio-analyzer's version, a spaCy model package's version) is
present only for model-backed detectors, and ``excerpt?`` only when asked for: records without them
(pattern detectors, rulesets without excerpts, records written before they existed) are as they
always were, and verify the same way.

Approval transitions are records in the same chain, told apart by ``kind`` (decision records have
none). Their fields: v, seq, prev_hash, hash, time, decision_id (the transition's own id),
kind ("approval"), event (opened | approved | denied | expired | cancelled | used | replay),
outcome ("approval:<event>"), actor (who did it: an approver, or "palisade" for the engine),
comment, decision (the decision that caused it, or ""), ruleset {name, version},
principal {id, tenant}, and approval {id, queue, state, rule, binding, stage, tool, created, deadline,
on_expiry, single_use, used, resolver, comment, resolved} (times in the form of ``time``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.audit.canonical import CanonicalError, canonical_bytes, canonical_json, encode_string
from engine.audit.keys import Digester
from engine.runtime.decision import Decision, models_data
from engine.runtime.excerpts import Excerpt
from engine.runtime.request import Request

SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64
# For values without floats whose keys are all ASCII, json's C encoder writes exactly canonical JSON
# (the same string escapes, sorted keys, no whitespace): every record field but the findings (scores).
# Verification re-canonicalises every record, so a divergence could not pass unnoticed.
_encode_plain = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode
_WITH_FLOATS = frozenset({"findings"})
_CHAIN_KEYS = ("hash", "prev_hash", "seq")  # the fields sealing adds
APPROVAL_KIND = "approval"
_APPROVAL_SHARED = frozenset({"ruleset", "version", "principal_id", "tenant"})


@dataclass(frozen=True, slots=True)
class Entry:
    """A decision's record before the writer gives it its place in the chain (``seq``, ``prev_hash``)."""

    decision_id: str
    time: str
    outcome: str
    ruleset: str
    principal: str
    rules: tuple[str, ...]
    segments: tuple[str, ...]  # the canonical members, in order, in the runs between the chain's fields


@dataclass(frozen=True, slots=True)
class Record:
    """A sealed record: its place in the chain, the columns the store indexes, and its canonical body."""

    seq: int
    decision_id: str
    time: str
    outcome: str
    ruleset: str
    principal: str
    rules: tuple[str, ...]
    prev_hash: str
    hash: str
    body: str  # the canonical JSON of the whole record, ``hash`` included

    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the one form records use (so text order is time order)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def build_entry(
    decision: Decision,
    request: Request,
    decision_id: str,
    digester: Digester,
    at: datetime | None = None,
    *,
    excerpt: Excerpt | None = None,
    rollout: Mapping[str, Any] | None = None,
) -> Entry:
    """The record of ``decision`` on ``request``, ready for the writer. Holds no raw content: only
    ``excerpt``, already masked, when the ruleset asks for one. ``rollout`` (engine/audit/events.py)
    says which version of a ruleset under a rollout plan answered.

    Raises CanonicalError if a field holds text that is not valid Unicode (a lone surrogate).
    """
    moment = format_time(at or datetime.now(UTC))
    fields = _fields(decision, request, digester) | {"decision_id": decision_id, "time": moment}
    if excerpt is not None:
        fields["excerpt"] = excerpt.data()
    if rollout is not None:
        fields["rollout"] = dict(rollout)
    rules = tuple(dict.fromkeys(m.rule for m in decision.matches))
    return entry_of(fields, ruleset=decision.ruleset, principal=request.principal.id, rules=rules)


def build_approval_entry(
    event_id: str,
    event: str,
    approval: Mapping[str, Any],
    *,
    actor: str,
    comment: str,
    decision_id: str = "",
    at: datetime | None = None,
) -> Entry:
    """The record of one approval transition (kind "approval"): ``event`` on ``approval``, by ``actor``.

    ``approval`` is the approval's plain data without floats (see engine.approvals); its ``ruleset``,
    ``version``, ``principal_id`` and ``tenant`` fill the fields that decision records have too.
    """
    own = {k: v for k, v in approval.items() if k not in _APPROVAL_SHARED}
    fields = {
        "v": SCHEMA_VERSION,
        "kind": APPROVAL_KIND,
        "decision_id": event_id,
        "time": format_time(at or datetime.now(UTC)),
        "outcome": f"{APPROVAL_KIND}:{event}",
        "event": event,
        "actor": actor,
        "comment": comment,
        "decision": decision_id,
        "approval": own,
        "ruleset": {"name": approval["ruleset"], "version": approval["version"]},
        "principal": {"id": approval["principal_id"], "tenant": approval["tenant"]},
    }
    return entry_of(
        fields, ruleset=approval["ruleset"], principal=approval["principal_id"], rules=(own["rule"],)
    )


def entry_of(fields: Mapping[str, Any], *, ruleset: str, principal: str, rules: tuple[str, ...]) -> Entry:
    """The entry of a record with ``fields`` (its indexed columns given); CanonicalError if not Unicode."""
    segments = _segments(fields)
    try:
        "".join(segments).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"the record cannot be written: {exc.reason} in its text") from None
    return Entry(
        decision_id=fields["decision_id"],
        time=fields["time"],
        outcome=fields["outcome"],
        ruleset=ruleset,
        principal=principal,
        rules=rules,
        segments=segments,
    )


def _segments(fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The canonical members of ``fields``, in order, in the runs between where hash, prev_hash, seq go.

    Each run of float-free fields is one call to the C encoder (an object, its braces dropped).
    """
    segments: list[str] = []
    members: list[str] = []
    plain: dict[str, Any] = {}
    for key in sorted([*fields, *_CHAIN_KEYS]):  # ASCII keys: code point order is UTF-16 order
        if key not in _CHAIN_KEYS and key not in _WITH_FLOATS:
            plain[key] = fields[key]
            continue
        if plain:
            members.append(_encode_plain(plain)[1:-1])
            plain = {}
        if key in _CHAIN_KEYS:
            segments.append(",".join(members))
            members = []
        else:
            members.append(f"{encode_string(key)}:{canonical_json(fields[key])}")
    if plain:
        members.append(_encode_plain(plain)[1:-1])
    segments.append(",".join(members))
    return tuple(segments)


def _fields(decision: Decision, request: Request, digester: Digester) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "request_id": request.request_id,
        "approval_id": request.approval_id,
        "principal": {"id": request.principal.id, "tenant": request.principal.tenant},
        "stage": request.stage.value,
        "tool": None if request.tool is None else {"name": request.tool.name, "server": request.tool.server},
        "ruleset": {
            "name": decision.ruleset,
            "version": decision.version,
            "content_hash": decision.content_hash,
        },
        "outcome": decision.outcome.label,
        "default_applied": decision.default_applied,
        "matches": [
            {
                "rule": m.rule,
                "arm": m.arm,
                "outcome": m.outcome.label,
                "reason": m.reason,
                "from_error": m.from_error,
            }
            for m in decision.matches
        ],
        "skipped_rules": list(decision.skipped_rules),
        "findings": [
            {"detector": r.node, "type": f.type, "score": f.score, "start": f.start, "end": f.end}
            | ({"models": models_data(r.models)} if r.models else {})
            for r in decision.detectors
            for f in r.findings
        ],
        "detectors": [
            {"node": r.node, "kind": r.kind, "latency_us": round(r.duration_us), "error": r.error}
            | ({"models": models_data(r.models)} if r.models else {})
            for r in decision.detectors
        ],
        "errors": [
            {"source": e.source, "code": e.code, "message": e.message, "rule": e.rule}
            for e in decision.errors
        ],
        "latency_us": round(decision.duration_us),
        "digests": _digests(request, digester),
    }


def _digests(request: Request, digester: Digester) -> dict[str, str | None]:
    content = digester.digest(request.content.encode("utf-8", "surrogatepass"))
    tool_args = None if request.tool is None else digester.digest(tool_args_bytes(request.tool.arguments))
    return {"key_id": digester.key_id, "content": content, "tool_args": tool_args}


def tool_args_bytes(arguments: Mapping[str, Any]) -> bytes:
    """What the tool-arguments digest covers: their canonical JSON.

    Arguments with no canonical form (NaN, infinities, lone surrogates) fall back to Python's
    ``json.dumps(arguments, sort_keys=True)``, so every request still gets its record.
    """
    try:
        return canonical_bytes(arguments)
    except CanonicalError:
        return json.dumps(arguments, sort_keys=True).encode("ascii")


def seal(entry: Entry, seq: int, prev_hash: str) -> Record:
    """Place ``entry`` at ``seq`` after the record whose hash is ``prev_hash``, and hash it."""
    before_hash, before_prev, before_seq, after_seq = entry.segments
    prev, number = f'"prev_hash":{encode_string(prev_hash)}', f'"seq":{seq}'
    digest = hashlib.sha256(
        _object(before_hash, before_prev, prev, before_seq, number, after_seq).encode()
    ).hexdigest()
    return Record(
        seq=seq,
        decision_id=entry.decision_id,
        time=entry.time,
        outcome=entry.outcome,
        ruleset=entry.ruleset,
        principal=entry.principal,
        rules=entry.rules,
        prev_hash=prev_hash,
        hash=digest,
        body=_object(before_hash, f'"hash":"{digest}"', before_prev, prev, before_seq, number, after_seq),
    )


def _object(*members: str) -> str:
    return "{" + ",".join(member for member in members if member) + "}"


def rules_of(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The rules a record names, sorted: what the rule index holds for it (its matches' rules, or an
    approval's rule)."""
    if data.get("kind") == APPROVAL_KIND:
        approval = data.get("approval")
        named = [approval.get("rule")] if isinstance(approval, dict) else []
    else:
        matches = data.get("matches")
        named = [m.get("rule") for m in matches if isinstance(m, dict)] if isinstance(matches, list) else []
    return tuple(sorted({rule for rule in named if isinstance(rule, str)}))


def record_hash(data: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a record's data without its ``hash`` field."""
    return hashlib.sha256(canonical_bytes({k: v for k, v in data.items() if k != "hash"})).hexdigest()
