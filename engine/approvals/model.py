"""What an approval is: its states, its plain data, and the digest that binds it to one request."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from engine.audit.canonical import canonical_bytes
from engine.audit.record import format_time, tool_args_bytes
from engine.runtime.request import Request


class State(StrEnum):
    """pending -> approved | denied | expired | cancelled; only pending ever changes."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ApprovalError(Exception):
    """An approval cannot be read or changed as asked; the message says why."""


class ApprovalNotFound(ApprovalError):
    """No approval has this id."""


class AlreadyResolved(ApprovalError):
    """The approval is no longer pending: another approver won, or it expired or was cancelled."""

    def __init__(self, approval: Approval) -> None:
        super().__init__(f"approval {approval.id} is already resolved: {approval.state.value}")
        self.approval = approval


@dataclass(frozen=True, slots=True)
class Approval:
    """One approval. Times are Unix microseconds; ``resolved_us`` is 0 while pending."""

    id: str
    queue: str
    state: State
    ruleset: str
    version: str
    rule: str
    reason: str
    binding: str
    stage: str
    principal_id: str
    tenant: str
    tool: str
    created_us: int
    deadline_us: int
    on_expiry: str = "deny"
    single_use: bool = True
    used: bool = False
    resolver: str = ""
    comment: str = ""
    resolved_us: int = 0

    @property
    def pending(self) -> bool:
        return self.state is State.PENDING

    def due(self, now_us: int) -> bool:
        """Pending past its deadline: it is expired, whether or not that is stored yet."""
        return self.pending and now_us >= self.deadline_us

    def traced(self) -> dict[str, str]:
        """What a span says of it: its id, queue, ruleset and rule, and its state (no principal, no text)."""
        return {
            "palisade.approval.id": self.id,
            "palisade.approval.queue": self.queue,
            "palisade.approval.state": self.state.value,
            "palisade.approval.rule": self.rule,
            "gen_ai.security.policy.name": self.ruleset,
        }

    def audit_data(self) -> dict[str, Any]:
        """Plain data for the audit record: no floats, times as RFC 3339."""
        data = asdict(self) | {"state": self.state.value}
        for key in ("created_us", "deadline_us", "resolved_us"):
            value = data.pop(key)
            data[key.removesuffix("_us")] = _rfc3339(value) if value else ""
        data.pop("reason")
        return data


@dataclass(frozen=True, slots=True)
class Change:
    """One transition, as Watch delivers it: ``seq`` orders changes across every process."""

    seq: int
    event: str
    approval: Approval


def binding_digest(request: Request, ruleset: str, keyed: Callable[[bytes], str]) -> str:
    """``keyed`` (the audit log's HMAC-SHA-256) of the canonical JSON of what an approval approves:
    the ruleset, stage, principal, content (by its SHA-256) and tool call (name, server, canonical
    arguments). Keyed because approvals and their audit records show the binding: a plain hash of
    a short prompt ("my SSN is ...") could be matched by guessing."""
    tool = request.tool
    bound = {
        "ruleset": ruleset,
        "stage": request.stage.value,
        "principal": {"id": request.principal.id, "tenant": request.principal.tenant},
        "content": hashlib.sha256(request.content.encode("utf-8", "surrogatepass")).hexdigest(),
        "tool": None
        if tool is None
        else {
            "name": tool.name,
            "server": tool.server,
            "arguments": hashlib.sha256(tool_args_bytes(tool.arguments)).hexdigest(),
        },
    }
    return keyed(canonical_bytes(bound))


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def _rfc3339(micros: int) -> str:
    return format_time(datetime.fromtimestamp(micros / 1_000_000, UTC))
