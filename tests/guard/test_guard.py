"""Guard, the one Check use case: in process and through gRPC, the same decision and the same record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from server_helpers import config, running

from engine.audit import AuditPaths
from engine.audit.store import Store
from engine.client.guard_client import GuardClient
from engine.config import ServeConfig
from engine.guard import Guard
from engine.runtime.registry import UnknownRuleset
from engine.runtime.request import Request, request_from_dict

ROOT = Path(__file__).resolve().parents[2]
RULESETS = ROOT / "rulesets"
# Per-call fields: which call, when, where in the chain, how long it took.
_PER_CALL = frozenset({"decision_id", "time", "hash", "prev_hash", "seq", "latency_us"})
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "block": (
        "coding_agent",
        {"stage": "tool_call", "tool": {"name": "shell.exec", "arguments": {"command": "rm -rf /"}}},
    ),
    "allow": ("support_bot", {"stage": "input", "text": "Where is my parcel? It left Leeds on Monday."}),
    "redact": ("support_bot", {"stage": "output", "text": "Sure, I emailed jane.doe@example.com for you."}),
    "escalate": (
        "coding_agent",
        {"stage": "tool_call", "tool": {"name": "shell.exec", "arguments": {"command": "make install"}}},
    ),
}


def _record(data_dir: Path, decision_id: str) -> dict[str, Any]:
    """The audit record of ``decision_id``, less what differs from call to call."""
    store = Store.open_reader(AuditPaths.of(data_dir).database)
    try:
        stored = store.find(decision_id)
    finally:
        store.close()
    assert stored is not None, f"no audit record for {decision_id}"
    body: dict[str, Any] = json.loads(stored.body)
    for detector in body["detectors"]:
        detector.pop("latency_us")
    return {k: v for k, v in body.items() if k not in _PER_CALL}


def _in_process(cfg: ServeConfig, ruleset: str, request: Request) -> tuple[str, tuple[str, ...], str]:
    with Guard.open(cfg) as guard:
        checked = guard.check(ruleset, request)
    return checked.decision.outcome.name, checked.decision.reasons, checked.decision_id


def _over_grpc(cfg: ServeConfig, ruleset: str, request: Request) -> tuple[str, tuple[str, ...], str]:
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}") as client:
        result = client.check_request(ruleset, request)
    return result.outcome.name, tuple(result.reasons), result.decision_id


@pytest.mark.parametrize("case", sorted(REQUESTS))
def test_in_process_and_over_grpc_the_same_decision_and_record(case: str, tmp_path: Path) -> None:
    ruleset, data = REQUESTS[case]
    request = request_from_dict(data | {"principal": {"id": "agent-7", "tenant": "acme"}})
    cfg = config(rulesets=str(RULESETS), data_dir=str(tmp_path))  # one data dir: one content key
    *local, local_id = _in_process(cfg, ruleset, request)
    *remote, remote_id = _over_grpc(cfg, ruleset, request)
    assert local == remote
    assert local[0] == ("FALLBACK" if case == "redact" else case.upper())
    assert _record(tmp_path, local_id) == _record(tmp_path, remote_id)


def test_an_unknown_ruleset_is_named(tmp_path: Path) -> None:
    request = request_from_dict({"stage": "input", "text": "hello"})
    guard = Guard.open(config(rulesets=str(RULESETS), data_dir=str(tmp_path)))
    with guard, pytest.raises(UnknownRuleset, match="no_such_ruleset"):
        guard.check("no_such_ruleset", request)


def test_the_readme_example_runs_as_shown(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = readme.split("### In process", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "rulesets").symlink_to(RULESETS)
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("BLOCK ('recursive delete of /")
    assert (tmp_path / "data" / "audit").is_dir()  # the decision was recorded where the config says
