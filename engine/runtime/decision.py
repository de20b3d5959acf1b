"""What an evaluation returns: the outcome, the rules that matched and why, findings, errors, timings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.base import Finding, ModelVersion
from dsl.ir import ActionNode
from dsl.types import Outcome

FALLBACK_PRIORITY = {"reply": 0, "model": 1, "redact": 2}  # the most conservative fallback first


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule whose arm matched (or whose error policy applied)."""

    rule: str
    arm: int  # index of the matching `when` arm; -1 when the error policy applied
    action: ActionNode
    reason: str
    from_error: bool = False

    @property
    def outcome(self) -> Outcome:
        return self.action.outcome


@dataclass(frozen=True, slots=True)
class DetectorReport:
    """One detector node that ran: its findings (offsets and types, never the text) and its time."""

    node: str
    kind: str
    findings: tuple[Finding, ...]
    duration_us: float
    error: str = ""
    cached: bool = False  # every text it scanned came from the cross-request cache
    cache_hits: int = 0  # texts (messages) whose result came from the cache
    cache_misses: int = 0  # texts it scanned, then cached
    models: tuple[ModelVersion, ...] = ()  # what its findings come from; () for a pattern detector
    started_s: float = 0.0  # time.perf_counter() when it started (traces place its span by it)


@dataclass(frozen=True, slots=True)
class EvalError:
    """A failure the error policy absorbed: which detector or rule, and what went wrong."""

    source: str
    code: str  # detector_error | deadline_exceeded | regex_timeout
    message: str
    rule: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    ruleset: str
    version: str
    content_hash: str
    matches: tuple[RuleMatch, ...] = ()
    detectors: tuple[DetectorReport, ...] = ()
    errors: tuple[EvalError, ...] = ()
    skipped_rules: tuple[str, ...] = ()
    redacted: str | None = None
    default_applied: bool = False
    duration_us: float = 0.0
    timings_us: Mapping[str, float] = field(default_factory=dict)
    default_action: ActionNode | None = None  # the ruleset's default, for `action` when it applied
    # an ESCALATE's text as its redactions leave it, for when its approvals are granted (ApprovalGate)
    redacted_if_approved: str | None = None

    @property
    def deciding(self) -> tuple[RuleMatch, ...]:
        """The matches whose outcome is the decision's (ties keep them all)."""
        return tuple(m for m in self.matches if m.outcome == self.outcome)

    @property
    def action(self) -> ActionNode | None:
        """The action the caller applies: among tied fallbacks the most conservative (a canned reply,
        then a fallback model, then redaction), else the first deciding match in source order; the
        default's when no rule matched."""
        deciding = sorted(self.deciding, key=lambda m: FALLBACK_PRIORITY.get(m.action.fallback, 0))
        if deciding:
            return deciding[0].action
        return self.default_action if self.default_applied else None

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(m.reason for m in self.deciding)

    def summary(self) -> dict[str, Any]:
        """A plain-data view for printing and JSON output."""
        return {
            "outcome": self.outcome.label,
            "ruleset": self.ruleset,
            "version": self.version,
            "content_hash": self.content_hash,
            "matches": [
                {"rule": m.rule, "arm": m.arm, "outcome": m.outcome.label, "reason": m.reason}
                | ({"from_error": True} if m.from_error else {})
                for m in self.matches
            ],
            "findings": [
                {
                    "detector": r.node,
                    "type": f.type,
                    "start": f.start,
                    "end": f.end,
                    "score": f.score,
                }
                | ({"models": models_data(r.models)} if r.models else {})
                for r in self.detectors
                for f in r.findings
            ],
            "errors": [{"source": e.source, "code": e.code, "message": e.message} for e in self.errors],
            "redacted": self.redacted,
            "default_applied": self.default_applied,
            "duration_us": round(self.duration_us, 1),
        } | self._cache_summary()

    @property
    def cache_hits(self) -> int:
        """Texts whose detector result came from the cross-request cache, over all detectors."""
        return sum(r.cache_hits for r in self.detectors)

    @property
    def cache_misses(self) -> int:
        return sum(r.cache_misses for r in self.detectors)

    def _cache_summary(self) -> dict[str, Any]:
        hits, misses = self.cache_hits, self.cache_misses
        return {"cache": {"hits": hits, "misses": misses}} if hits or misses else {}


def models_data(models: tuple[ModelVersion, ...]) -> list[dict[str, str]]:
    """Models as plain data, ``[{"name": ..., "version": ...}]``, for summaries and audit records."""
    return [{"name": m.name, "version": m.version} for m in models]
