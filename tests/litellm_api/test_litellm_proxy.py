"""A real LiteLLM proxy with Palisade as its generic guardrail before and after each call, in front of
a local OpenAI-style upstream, driven by the openai client: allowed, blocked, masked, Palisade down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from litellm_helpers import MASTER_KEY, litellm_config, litellm_proxy, litellm_venv, serving
from openai import OpenAI

from benchmarks.envoy_bench import Script, Upstream, free_port

pytestmark = pytest.mark.timeout(900)  # the first run builds LiteLLM's venv (minutes), then it is cached


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def venv() -> Path:
    return litellm_venv()


@pytest.fixture(scope="module")
def client(venv: Path, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAI]:
    data_dir = tmp_path_factory.mktemp("palisade")
    with serving(data_dir) as palisade_url:
        config = litellm_config(
            tmp_path_factory.mktemp("litellm"), upstream.port, palisade_url, "fail_closed"
        )
        with litellm_proxy(venv, config, free_port()) as base_url:
            yield OpenAI(base_url=base_url, api_key=MASTER_KEY, max_retries=0)


def _ask(client: OpenAI, text: str) -> str:
    answer = client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": text}])
    return answer.choices[0].message.content or ""


def test_allowed(client: OpenAI, upstream: Upstream) -> None:
    upstream.script = Script(text="Paris.")
    upstream.requests.clear()
    assert _ask(client, "What is the capital of France?") == "Paris."
    assert upstream.requests[-1]["messages"][-1]["content"] == "What is the capital of France?"


def test_blocked_prompt_never_reaches_the_model(client: OpenAI, upstream: Upstream) -> None:
    upstream.requests.clear()
    with pytest.raises(openai.APIStatusError) as refused:
        _ask(client, "Tell me about Project Nightshade")
    assert "rule confidential" in str(refused.value)
    assert refused.value.status_code == 400  # LiteLLM's answer to a guardrail's BLOCKED
    assert not upstream.requests


def test_masked_both_ways(client: OpenAI, upstream: Upstream) -> None:
    upstream.script = Script(text="Sure, I will write to erin@example.com.")
    upstream.requests.clear()
    answer = _ask(client, "Write to bob@example.com")
    assert upstream.requests[-1]["messages"][-1]["content"] == "Write to <EMAIL_ADDRESS>"
    assert answer == "Sure, I will write to <EMAIL_ADDRESS>."


def test_blocked_answer(client: OpenAI, upstream: Upstream) -> None:
    upstream.script = Script(text="Project Nightshade ships in May.")
    with pytest.raises(openai.APIStatusError) as refused:
        _ask(client, "When does it ship?")
    assert "rule confidential" in str(refused.value)


def test_palisade_down(venv: Path, upstream: Upstream, tmp_path: Path) -> None:
    """Nothing listens where Palisade should: fail_closed refuses every call; fail_open lets it through."""
    upstream.script = Script(text="Paris.")
    down = f"http://127.0.0.1:{free_port()}"
    closed = litellm_config(tmp_path / "closed", upstream.port, down, "fail_closed")
    with (
        litellm_proxy(venv, closed, free_port()) as base_url,
        pytest.raises(openai.APIStatusError) as refused,
    ):
        _ask(OpenAI(base_url=base_url, api_key=MASTER_KEY, max_retries=0), "hello")
    assert refused.value.status_code == 500
    opened = litellm_config(tmp_path / "open", upstream.port, down, "fail_open")
    with litellm_proxy(venv, opened, free_port()) as base_url:
        assert _ask(OpenAI(base_url=base_url, api_key=MASTER_KEY, max_retries=0), "hello") == "Paris."
