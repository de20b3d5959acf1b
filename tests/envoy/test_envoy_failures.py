"""Palisade down: Envoy's own failure mode decides, closed (500, nothing reaches the model) or open."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from openai import InternalServerError, OpenAI

from benchmarks.envoy_bench import Upstream

Client = Callable[..., OpenAI]
MESSAGES = [{"role": "user", "content": "Let us discuss the forbidden topic."}]  # Palisade would block it


def test_failing_closed_nothing_reaches_the_model(client: Client, upstream: Upstream) -> None:
    with pytest.raises(InternalServerError) as caught:
        client("fail_closed").chat.completions.create(model="small", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 500
    assert not upstream.started  # not even its headers reached the model


def test_failing_open_the_exchange_goes_on_unchecked(client: Client, upstream: Upstream) -> None:
    answer = client("fail_open").chat.completions.create(model="small", messages=MESSAGES)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "Hello from the model."
    assert upstream.requests[-1]["messages"] == MESSAGES
    stream = client("fail_open").chat.completions.create(model="small", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from the model."
