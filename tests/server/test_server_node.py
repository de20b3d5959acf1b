"""A client not written in Python (Node.js, @grpc/grpc-js + @grpc/proto-loader) gets the same decisions."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from server_helpers import ROOT

from engine.client.guard_client import CheckResult, GuardClient, GuardError

NODE_DIR = ROOT / "tests" / "node"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (needed for this test)")

V1 = {"ruleset": "server_test", "version": "1.0.0"}
CASES: list[dict[str, Any]] = [
    {"name": "allow", "request": V1 | {"stage": "input", "text": "hello there"}},
    {"name": "block", "request": V1 | {"stage": "input", "text": "ssn 123-45-6789"}},
    {
        "name": "reply",
        "request": V1 | {"stage": "input", "messages": [{"role": "user", "content": "refund"}]},
    },
    {"name": "model", "request": V1 | {"stage": "input", "text": "about that lawsuit"}},
    {
        "name": "redact",
        "request": V1
        | {"stage": "output", "messages": [{"role": "assistant", "content": "key AKIAABCDEFGHIJKLMNOP"}]},
    },
    {
        "name": "escalate",
        "request": V1
        | {
            "stage": "tool_call",
            "tool": {"name": "shell.exec", "arguments": {"command": "rm -rf /", "opts": {"force": True}}},
            "principal": {"id": "u1", "roles": ["dev"], "attributes": {"team": "red"}},
        },
    },
    {
        "name": "tool args",
        "request": V1
        | {
            "stage": "tool_call",
            "tool": {"name": "fs.read", "arguments": {"path": "/etc/passwd", "n": [1, 2.5, None]}},
            "principal": {"roles": ["admin"]},
        },
    },
    {
        "name": "metadata",
        "request": V1 | {"stage": "input", "text": "hi", "metadata": {"channel": "internal"}},
    },
    {"name": "active version", "request": {"ruleset": "server_test", "stage": "input", "text": "pineapple"}},
    {"name": "not found", "request": {"ruleset": "nope", "stage": "input", "text": "hi"}},
    {"name": "invalid", "request": V1 | {"stage": "input"}},
]


def python_summary(name: str, result: CheckResult | GuardError) -> dict[str, Any]:
    """What check.js prints for one case, from the Python client's result."""
    if isinstance(result, GuardError):
        return {"name": name, "code": result.code.name}
    fallback = result.fallback
    kind = f"FALLBACK_KIND_{fallback.kind.upper()}" if fallback else ""
    return {
        "name": name,
        "code": "OK",
        "outcome": f"OUTCOME_{result.outcome.name}",
        "version": result.version,
        "deciding": list(result.deciding_rules),
        "reasons": list(result.reasons),
        "redacted": result.redacted,
        "fallback": {"kind": kind, "reply": fallback.reply, "model": fallback.model} if fallback else None,
        "escalation_queue": result.escalation.queue if result.escalation else None,
        "has_approval_id": bool(result.escalation and result.escalation.approval_id),
        "finding_types": [f.type for f in result.findings],
        "has_decision_id": bool(result.decision_id),
    }


def ask_python(client: GuardClient, request: dict[str, Any]) -> CheckResult | GuardError:
    fields = dict(request)
    try:
        return client.check(ruleset=fields.pop("ruleset"), version=fields.pop("version", ""), **fields)
    except GuardError as exc:
        return exc


def node_request(request: dict[str, Any]) -> dict[str, Any]:
    return request | {"stage": "STAGE_" + request["stage"].upper()}


def test_node_client_gets_the_same_decisions_as_the_python_client(
    client: GuardClient, target: str, tmp_path: Path
) -> None:
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("tests/node has no node_modules: run `npm ci --prefix tests/node`")
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([{"name": c["name"], "request": node_request(c["request"])} for c in CASES]))
    assert NODE is not None
    run = subprocess.run(
        [NODE, str(NODE_DIR / "check.js"), target, str(cases)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    from_node = json.loads(run.stdout)
    from_python = [python_summary(c["name"], ask_python(client, c["request"])) for c in CASES]
    assert from_node == from_python
    outcomes = {s.get("outcome") for s in from_node}
    assert outcomes >= {"OUTCOME_ALLOW", "OUTCOME_BLOCK", "OUTCOME_FALLBACK", "OUTCOME_ESCALATE"}
    assert {s["code"] for s in from_node} == {"OK", "NOT_FOUND", "INVALID_ARGUMENT"}
