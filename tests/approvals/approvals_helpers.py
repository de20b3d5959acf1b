"""Helpers for the approvals tests: a real ruleset that escalates, requests for it, the audit trail."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit_helpers import verify

from dsl.compiler import compile_source
from dsl.types import Stage
from engine.approvals import Approval, Approvals, State, binding_digest
from engine.approvals.model import now_us
from engine.audit import AuditPaths
from engine.audit.store import Store
from engine.runtime.decision import Decision
from engine.runtime.evaluator import Evaluator
from engine.runtime.ids import new_id
from engine.runtime.request import Principal, Request, ToolCall

NAME = "approvals_unit"
RULESET = r"""
ruleset approvals_unit version "1.0.0" {
  owner "tests@example.com"
  default allow
  on error block
  detector ssn = regex(pattern: "\d{3}-\d{2}-\d{4}", type: US_SSN)

  rule shell on tool_call {
    when tool.name == "shell.exec" then escalate to "sre-oncall" within 30m "shell commands need an approver"
  }
  rule migrations_need_a_dba on tool_call {
    when tool.name == "db.migrate" then escalate to "dba" within 30m "migrations need a DBA"
  }
  rule migrations_need_sre on tool_call {
    when tool.name == "db.migrate" then escalate to "sre-oncall" within 1h "migrations need SRE too"
  }
  rule reads_go_ahead on tool_call {
    when tool.name == "logs.read" then escalate to "privacy" within 15m else allow "reads go ahead"
  }
  rule listings on tool_call {
    when tool.name == "fs.list" then escalate to "sre-oncall" within 30m reusable "one approval for a while"
  }
  rule no_passwd on tool_call {
    when tool.args.path == "/etc/passwd" then block "system files"
  }
  rule wires on input {
    when content matches "(?i)\bwire\b" then escalate to "finance" within 30m "wires need finance"
  }
  rule mask_ssn on input {
    when ssn(content).found then fallback redact ssn "SSN masked"
  }
}
"""
AGENT = Principal(id="agent-7", tenant="acme")
SHELL = ToolCall(name="shell.exec", arguments={"cmd": "rm -rf build/"})
MIGRATE = ToolCall(name="db.migrate", arguments={"to": "42"})
LOGS = ToolCall(name="logs.read", arguments={"path": "/var/log/app.log"})
LISTING = ToolCall(name="fs.list", arguments={"path": "/workspace"})
MINUTE_US = 60 * 1_000_000


@functools.cache
def evaluator() -> Evaluator:
    return Evaluator(compile_source(RULESET))


def call(tool: ToolCall = SHELL, *, approval_id: str = "", principal: Principal = AGENT) -> Request:
    return Request(stage=Stage.TOOL_CALL, tool=tool, principal=principal, approval_id=approval_id)


def resumed(request: Request, approval_id: str) -> Request:
    return dataclasses.replace(request, approval_id=approval_id)


def decide(request: Request) -> Decision:
    return evaluator().evaluate(request)


def due_approval(
    approvals: Approvals, request: Request, rule: str, *, on_expiry: str = "deny", queue: str = "q"
) -> Approval:
    """A pending approval of ``rule`` for ``request`` whose deadline passed a minute ago, as if nobody
    answered it in time; stored (pending: expiry is applied when it is next read)."""
    now = now_us()
    tool = request.tool.name if request.tool is not None else ""
    candidate = Approval(
        id=new_id(),
        queue=queue,
        state=State.PENDING,
        ruleset=NAME,
        version="1.0.0",
        rule=rule,
        reason="nobody answered",
        binding=binding_digest(request, NAME, approvals.audit.digest),
        stage=request.stage.value,
        principal_id=request.principal.id,
        tenant=request.principal.tenant,
        tool=tool,
        created_us=now - 31 * MINUTE_US,
        deadline_us=now - MINUTE_US,
        on_expiry=on_expiry,
    )
    return approvals.open(candidate, "d-due")


def audit_records(audit_dir: Path) -> list[dict[str, Any]]:
    """Every record of the log in ``audit_dir``, in order, once its chain and signatures verify."""
    report = verify(audit_dir)
    assert report.ok, report.summary()
    store = Store.open_reader(AuditPaths.of(audit_dir).database)
    try:
        return [json.loads(row.body) for row in store.records()]
    finally:
        store.close()


def approval_events(audit_dir: Path, approval_id: str = "") -> list[str]:
    """The approval events in the log (of one approval when ``approval_id`` is given), in order."""
    return [
        r["event"]
        for r in audit_records(audit_dir)
        if r.get("kind") == "approval" and (not approval_id or r["approval"]["id"] == approval_id)
    ]


def pending(
    request: Request,
    digest: Callable[[bytes], str],
    *,
    queue: str = "sre-oncall",
    rule: str = "shell",
    deadline_in_us: int = 30 * MINUTE_US,
) -> Approval:
    """A pending approval of ``rule`` (ruleset "r") for ``request``, bound with ``digest``; not stored."""
    created = now_us()
    return Approval(
        id=new_id(),
        queue=queue,
        state=State.PENDING,
        ruleset="r",
        version="1",
        rule=rule,
        reason="needs a human",
        binding=binding_digest(request, "r", digest),
        stage="tool_call",
        principal_id="agent-7",
        tenant="acme",
        tool="shell.exec",
        created_us=created,
        deadline_us=created + deadline_in_us,
    )
