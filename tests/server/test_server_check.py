"""Every outcome end to end through a real gRPC server and the typed Python client."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from dsl.types import Outcome
from engine.client.guard_client import CheckResult, GuardClient
from engine.server.app import GuardServer

V1 = "1.0.0"


def ask(client: GuardClient, **fields: Any) -> CheckResult:
    return client.check(ruleset="server_test", version=V1, **fields)


def test_a_clean_prompt_is_allowed_by_the_default(client: GuardClient) -> None:
    result = ask(client, text="what is the weather like?")
    assert result.outcome is Outcome.ALLOW
    assert result.allowed and result.default_applied
    assert result.matches == () and result.errors == ()
    assert result.fallback is None and result.escalation is None and result.redacted is None


def test_an_ssn_is_blocked_with_the_rule_reason_and_finding_offsets(client: GuardClient) -> None:
    text = "my ssn is 123-45-6789, thanks"
    result = ask(client, text=text)
    assert result.outcome is Outcome.BLOCK
    assert result.deciding_rules == ("no_ssn",)
    assert result.reasons == ("SSNs are not allowed here",)
    (finding,) = result.findings
    assert (finding.detector, finding.kind, finding.type) == ("ssn(content)", "regex", "US_SSN")
    assert text[finding.start : finding.end] == "123-45-6789"


def test_a_refund_request_falls_back_to_a_canned_reply(client: GuardClient) -> None:
    result = ask(client, messages=[{"role": "user", "content": "I want a REFUND now"}])
    assert result.outcome is Outcome.FALLBACK
    assert result.fallback is not None
    assert (result.fallback.kind, result.fallback.reply) == ("reply", "Please use the refund form.")
    assert result.redacted is None


def test_a_legal_question_falls_back_to_another_model(client: GuardClient) -> None:
    result = ask(client, text="can I file a lawsuit?")
    assert result.outcome is Outcome.FALLBACK
    assert result.fallback is not None
    assert (result.fallback.kind, result.fallback.model) == ("model", "legal-review")


def test_leaked_keys_in_output_are_redacted_and_never_echoed(client: GuardClient) -> None:
    secret = "AKIAABCDEFGHIJKLMNOP"
    result = ask(client, stage="output", messages=[{"role": "assistant", "content": f"use {secret}"}])
    assert result.outcome is Outcome.FALLBACK
    assert result.fallback is not None and result.fallback.kind == "redact"
    assert result.redacted == "use <AWS_ACCESS_KEY>"
    assert [f.type for f in result.findings] == ["AWS_ACCESS_KEY"]
    assert secret not in repr([result.findings, result.matches, result.errors, result.reasons])


def test_a_destructive_tool_call_escalates_with_an_approval_id_and_deadline(client: GuardClient) -> None:
    before = dt.datetime.now(dt.UTC)
    result = ask(
        client,
        stage="tool_call",
        tool={"name": "shell.exec", "arguments": {"command": "rm -rf /"}, "server": "mcp://ops"},
        principal={"id": "u1", "roles": ["dev"]},
    )
    assert result.outcome is Outcome.ESCALATE
    assert result.escalation is not None
    assert result.escalation.queue == "sre-oncall"
    assert uuid.UUID(result.escalation.approval_id).version == 7
    assert result.escalation.deadline is not None
    assert result.escalation.deadline >= before + dt.timedelta(minutes=30)


def test_an_admin_may_run_the_tool_but_not_on_system_files(client: GuardClient) -> None:
    admin = {"id": "root", "roles": ["admin"]}
    allowed = ask(client, stage="tool_call", tool={"name": "shell.exec"}, principal=admin)
    assert allowed.outcome is Outcome.ALLOW
    blocked = ask(
        client,
        stage="tool_call",
        tool={"name": "fs.read", "arguments": {"path": "/etc/shadow", "opts": {"n": 1}}},
        principal=admin,
    )
    assert blocked.outcome is Outcome.BLOCK
    assert blocked.matches[0].arm == 1 and blocked.reasons == ("system files",)


def test_metadata_and_principal_tenant_reach_the_policy(client: GuardClient) -> None:
    outsider = ask(client, text="hi", metadata={"channel": "internal"}, principal={"tenant": "globex"})
    insider = ask(client, text="hi", metadata={"channel": "internal"}, principal={"tenant": "acme"})
    assert (outsider.outcome, insider.outcome) == (Outcome.BLOCK, Outcome.ALLOW)


def test_ties_and_most_restrictive_outcome_keep_every_match(client: GuardClient) -> None:
    result = ask(client, text="refund my lawsuit fees, ssn 123-45-6789")
    assert result.outcome is Outcome.BLOCK
    deciding = [m.rule for m in result.matches if m.deciding]
    assert deciding == ["no_ssn"]
    ties = ask(client, text="a refund for the lawsuit")
    assert sorted(ties.deciding_rules) == ["legal", "refunds"]


def test_the_active_version_is_the_highest_unless_pinned(client: GuardClient) -> None:
    active = client.check(ruleset="server_test", text="pineapple on pizza")
    pinned = client.check(ruleset="server_test", version=V1, text="pineapple on pizza")
    assert (active.version, active.outcome) == ("2.0.0", Outcome.BLOCK)
    assert (pinned.version, pinned.outcome) == (V1, Outcome.ALLOW)


def test_the_response_identifies_the_ruleset_and_the_decision(
    client: GuardClient, server: GuardServer
) -> None:
    first = ask(client, text="hello", request_id="req-42")
    second = ask(client, text="hello")
    evaluator = server.registry.get("server_test", V1)
    assert (first.ruleset, first.version) == ("server_test", V1)
    assert first.content_hash == evaluator.graph.content_hash
    assert first.request_id == "req-42"
    ids = [uuid.UUID(first.decision_id), uuid.UUID(second.decision_id)]
    assert [i.version for i in ids] == [7, 7] and ids[0] != ids[1]
    assert first.timings.server_us >= first.timings.evaluation_us > 0


@pytest.mark.parametrize("stage", ["input", "output", "tool_result", "retrieval"])
def test_every_content_stage_is_served(client: GuardClient, stage: str) -> None:
    result = ask(client, stage=stage, text="plain words")
    assert result.outcome is Outcome.ALLOW


def test_the_decision_prints_as_plain_json_data(client: GuardClient) -> None:
    data = ask(client, stage="tool_call", tool={"name": "db.drop_table"}).to_dict()
    assert data["outcome"] == "escalate"
    assert data["matches"][0]["outcome"] == "escalate"
    assert isinstance(data["escalation"]["deadline"], str)


def test_a_default_escalation_carries_its_queue_and_deadline(client: GuardClient) -> None:
    result = client.check(ruleset="default_test", text="something else")
    assert result.outcome is Outcome.ESCALATE and result.default_applied
    assert result.escalation is not None and result.escalation.queue == "triage"
    assert result.reasons == ("nothing vouched for it",)
    assert client.check(ruleset="default_test", text="Hello!").outcome is Outcome.ALLOW


def test_a_default_reply_carries_the_reply(client: GuardClient) -> None:
    result = client.check(ruleset="default_reply_test", text="tell me a joke")
    assert result.outcome is Outcome.FALLBACK and result.default_applied
    assert result.fallback is not None
    assert (result.fallback.kind, result.fallback.reply) == ("reply", "I can only help with orders.")
