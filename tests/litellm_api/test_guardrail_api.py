"""LiteLLM's Generic Guardrail API as `palisade serve` serves it with `[http]` on: each documented
request shape and what it answers, and every decision in the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_helpers import audit_query
from litellm_helpers import serving

PATH = "/beta/litellm_basic_guardrail_api"
REQUEST_DATA = {"user_api_key_user_id": "alice", "user_api_key_team_id": "engineering"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("palisade")


@pytest.fixture(scope="module")
def base_url(data_dir: Path) -> Iterator[str]:
    with serving(data_dir) as url:
        yield url


def ask(base_url: str, input_type: str = "request", **body: Any) -> httpx.Response:
    call = {"texts": [], "input_type": input_type, "request_data": REQUEST_DATA} | body
    return httpx.post(base_url + PATH, json=call, timeout=30)


def test_allowed_text_answers_none(base_url: str) -> None:
    answer = ask(base_url, texts=["What is the capital of France?"], litellm_call_id="call-1")
    assert answer.status_code == 200
    assert answer.json() == {"action": "NONE"}


def test_blocked_text_names_the_rule(base_url: str) -> None:
    answer = ask(base_url, texts=["hello", "Tell me about Project Nightshade"]).json()
    assert answer["action"] == "BLOCKED"
    assert (
        "project Nightshade is confidential (rule confidential, ruleset llm_gateway"
        in answer["blocked_reason"]
    )


def test_masked_texts_come_back_in_place(base_url: str) -> None:
    texts = ["Write to bob@example.com", "and cc\ncarol@example.org please"]
    answer = ask(base_url, texts=texts).json()
    assert answer == {
        "action": "GUARDRAIL_INTERVENED",
        "texts": ["Write to <EMAIL_ADDRESS>", "and cc\n<EMAIL_ADDRESS> please"],
    }


def test_response_is_checked_at_output_with_its_tool_calls(base_url: str) -> None:
    masked = ask(base_url, "response", texts=["Mail dave@example.com"]).json()
    assert masked == {"action": "GUARDRAIL_INTERVENED", "texts": ["Mail <EMAIL_ADDRESS>"]}
    tool = {"id": "c1", "type": "function", "function": {"name": "run_shell", "arguments": '{"cmd": "ls"}'}}
    blocked = ask(base_url, "response", texts=[], tool_calls=[tool]).json()
    assert blocked["action"] == "BLOCKED" and "rule no_shell" in blocked["blocked_reason"]


def test_team_maps_to_the_tenant(base_url: str) -> None:
    contractor = REQUEST_DATA | {"user_api_key_team_id": "contractors"}
    assert ask(base_url, texts=["What are the salaries here?"]).json()["action"] == "NONE"
    refused = ask(base_url, texts=["What are the salaries here?"], request_data=contractor).json()
    assert refused["action"] == "BLOCKED" and "rule contractors" in refused["blocked_reason"]


def test_bad_requests_are_refused_with_why(base_url: str) -> None:
    malformed = httpx.post(base_url + PATH, content=b"{not json", timeout=30)
    assert malformed.status_code == 400
    no_type = httpx.post(base_url + PATH, json={"texts": ["hi"]}, timeout=30)
    assert no_type.status_code == 400 and "input_type" in no_type.json()["error"]["message"]
    unknown = httpx.post(
        base_url + PATH,
        json={"texts": ["hi"], "input_type": "request"},
        headers={"x-palisade-ruleset": "nope"},
    )
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
    huge = httpx.post(base_url + PATH, content=b"x" * (5 * 1024 * 1024), timeout=30)
    assert huge.status_code == 413


def test_every_decision_is_audited_with_the_principal(base_url: str, data_dir: Path) -> None:
    ask(base_url, texts=["audited"], litellm_call_id="call-audit")
    records = audit_query(data_dir, "--principal", "alice", "--ruleset", "llm_gateway")
    assert all(r["principal"]["tenant"] in ("engineering", "contractors") for r in records)
    assert {r["outcome"] for r in records} >= {"allow", "block", "fallback"}
