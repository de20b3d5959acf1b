"""The Checks of MCP traffic, each through Guard.check, and what their decisions do to a message."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dsl.types import Outcome, Stage
from engine.approvals import ApprovalError, watch
from engine.config import Limits
from engine.guard import Checked, Guard
from engine.protocol.request_codec import InvalidRequest, bounded
from engine.runtime.redaction import split_lines
from engine.runtime.request import Principal, Request, ToolCall

Progress = Callable[[str], None]  # told, while a Check waits for its approval, what it waits for
PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks through the proxy: the ruleset, the MCP server's name, the principal."""

    ruleset: str
    server: str
    principal: Principal = field(default_factory=Principal)


@dataclass(frozen=True, slots=True)
class Ruling:
    """What to do with a message: pass it (``texts`` rewritten where a rule redacts) or refuse it
    with ``message`` (which names the rule, so that the model sees why)."""

    allowed: bool
    checked: Checked | None = None
    texts: tuple[str, ...] = ()  # the checked texts, redacted where a rule redacts
    message: str = ""
    reply: str | None = None  # FALLBACK reply: answer this instead of asking the server


def refusal_text(checked: Checked, what: str) -> str:
    """Why Palisade refused ``what``, naming the rule, the ruleset and the decision id."""
    rule, reason = checked.cited
    because = f": {reason}" if reason else ""
    return (
        f"Palisade blocked {what}{because} (rule {rule}, ruleset {checked.decision.ruleset},"
        f" decision {checked.decision_id})"
    )


class McpChecks:
    """Makes the proxy's Checks through ``guard`` under the service's limits (the gRPC codec's);
    a request over a limit is refused, never passed unchecked."""

    def __init__(self, guard: Guard, limits: Limits, caller: Caller) -> None:
        self.guard = guard
        self.limits = limits
        self.caller = caller

    def check(
        self,
        stage: Stage,
        texts: Sequence[str],
        *,
        tool: tuple[str, Mapping[str, Any]] | None = None,
        metadata: Mapping[str, str] | None = None,
        approval_id: str = "",
    ) -> Checked:
        """One Check of ``texts`` (joined by newlines) and ``tool`` (name, arguments) at ``stage``.
        Raises InvalidRequest (over a limit)."""
        caller = self.caller
        request = Request(
            stage=stage,
            text="\n".join(texts),
            tool=ToolCall(tool[0], dict(tool[1]), caller.server) if tool is not None else None,
            principal=caller.principal,
            metadata=dict(metadata or {}),
            approval_id=approval_id,
        )
        limited = bounded(caller.ruleset, request, self.limits)
        return self.guard.check(caller.ruleset, limited)

    def rule(
        self,
        stage: Stage,
        texts: Sequence[str],
        what: str,
        *,
        tool: tuple[str, Mapping[str, Any]] | None = None,
        metadata: Mapping[str, str] | None = None,
        wait_s: float = 0.0,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> Ruling:
        """Check, wait up to ``wait_s`` for an approval that an ESCALATE opens (then check again
        with it), and say what to do with the message; ``what`` names it in a refusal."""
        try:
            checked = self.check(stage, texts, tool=tool, metadata=metadata)
            if checked.decision.outcome is Outcome.ESCALATE and checked.approval is not None:
                approval_id = checked.approval.id
                if self._settled(approval_id, wait_s, progress, stop or threading.Event()):
                    checked = self.check(stage, texts, tool=tool, metadata=metadata, approval_id=approval_id)
        except InvalidRequest as exc:
            return Ruling(False, message=f"Palisade refused {what}: {exc}")
        return ruling(checked, texts, what)

    def _settled(
        self, approval_id: str, wait_s: float, progress: Progress | None, stop: threading.Event
    ) -> bool:
        """Wait until the approval is answered (True), or ``wait_s`` passes or ``stop`` is set (False)."""
        give_up = time.monotonic() + wait_s
        told = 0.0
        try:
            for _, approval in watch(
                self.guard.approvals,
                approval_id=approval_id,
                active=lambda: time.monotonic() < give_up and not stop.is_set(),
            ):
                if not approval.pending:
                    return True
                if progress is not None and time.monotonic() - told >= PROGRESS_EVERY_S:
                    progress(f"waiting for approval {approval_id} in queue {approval.queue}")
                    told = time.monotonic()
        except ApprovalError:
            return False
        return False


def ruling(checked: Checked, texts: Sequence[str], what: str) -> Ruling:
    """ALLOW passes; FALLBACK redact passes ``texts`` rewritten (cut back into the pieces they were);
    FALLBACK reply answers instead; BLOCK, ESCALATE (not approved in time) and a fallback model
    (which a tool cannot take) refuse."""
    decision = checked.decision
    if decision.outcome is Outcome.ALLOW:
        return Ruling(True, checked, tuple(texts))
    if decision.outcome is Outcome.ESCALATE:
        approval = checked.approval
        waiting = f"; approval {approval.id} is pending in queue {approval.queue}" if approval else ""
        return Ruling(False, checked, message=refusal_text(checked, what) + waiting)
    action = decision.action
    kind = action.fallback if action is not None and decision.outcome is Outcome.FALLBACK else ""
    if kind == "reply" and action is not None:
        return Ruling(False, checked, reply=action.fallback_value)
    if kind == "redact" and decision.redacted is not None:
        pieces = split_lines(texts, decision.redacted)
        if pieces is not None:
            return Ruling(True, checked, pieces)
        return Ruling(
            False, checked, message=refusal_text(checked, what) + " (its redaction cannot be applied)"
        )
    return Ruling(False, checked, message=refusal_text(checked, what))


def canonical(value: Any) -> str:
    """``value`` as one line of JSON (sorted keys), as the proxy checks arguments and structured results."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
