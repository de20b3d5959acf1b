"""The response side through a real Envoy: whole completions and streams checked before the client
sees them, text held back only within the documented window, tool calls checked once complete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from envoy_helpers import HOLD_CHARS, error_of, recorded
from openai import OpenAI, PermissionDeniedError

from benchmarks.envoy_bench import Ports, Script, Upstream, ext_proc_counter

Client = Callable[..., OpenAI]
LONG = "Your order shipped on Monday. It should arrive by Thursday. Tracking is on its way to you. "
MESSAGES = [{"role": "user", "content": "Where is my order?"}]


def _complete(client: OpenAI) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(model="small", messages=MESSAGES)  # type: ignore[arg-type]


def _stream(client: OpenAI) -> list[openai.types.chat.ChatCompletionChunk]:
    return list(client.chat.completions.create(model="small", messages=MESSAGES, stream=True))  # type: ignore[arg-type]


def _text(chunks: list[openai.types.chat.ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_blocked_completion_never_reaches_the_client(
    client: Client, upstream: Upstream, data_dir: Path
) -> None:
    upstream.script = Script(text="Sure: LAUNCH-CODE-0042.")
    with pytest.raises(PermissionDeniedError) as caught:
        _complete(client())
    error = error_of(caught.value)
    assert (error["code"], error["rule"]) == ("blocked", "codes")
    assert recorded(data_dir)[error["decision_id"]]["stage"] == "output"


def test_a_redacted_completion_is_rewritten(client: Client, upstream: Upstream) -> None:
    upstream.script = Script(text="Her SSN is 123-45-6789, mail her at ann@example.com.")
    answer = _complete(client())
    assert answer.choices[0].message.content == "Her SSN is <US_SSN>, mail her at <EMAIL_ADDRESS>."
    assert answer.usage is not None and answer.usage.total_tokens == 12  # the rest of the body is kept


def test_each_tool_call_a_completion_asks_for_is_checked(client: Client, upstream: Upstream) -> None:
    upstream.script = Script(text="", tool_calls=[("shell", {"command": "ls -l"}), ("search", {"q": "x"})])
    calls = _complete(client()).choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["shell", "search"]  # type: ignore[union-attr]
    upstream.script = Script(text="", tool_calls=[("search", {"q": "x"}), ("shell", {"command": "rm -rf /"})])
    with pytest.raises(PermissionDeniedError) as caught:
        _complete(client())
    assert error_of(caught.value)["rule"] == "shell"


def test_a_stream_split_anywhere_arrives_whole(client: Client, upstream: Upstream) -> None:
    upstream.script = Script(text=LONG * 3, piece_chars=5)  # each event written in two body chunks
    chunks = _stream(client())
    assert _text(chunks) == LONG * 3
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_held_text_costs_no_answer(client: Client, upstream: Upstream, ports: Ports) -> None:
    """A streamed answer is FULL_DUPLEX_STREAMED: Envoy sends each chunk on without waiting for an
    answer, and Palisade answers only when text may leave (and at the end)."""
    upstream.script = Script(text=LONG, piece_chars=2)  # 46 events, each in two chunks

    def counts() -> list[int]:
        names = ("stream_msgs_sent", "stream_msgs_received")
        return [ext_proc_counter(ports.admin, "guarded", name) for name in names]

    before = counts()
    assert _text(_stream(client())) == LONG
    sent, answered = (now - then for now, then in zip(counts(), before, strict=True))
    assert answered < sent / 4


def test_a_stream_is_blocked_mid_way(client: Client, upstream: Upstream, ports: Ports) -> None:
    full = LONG + "The code is LAUNCH-CODE-77 and more text follows here."
    upstream.script = Script(text=full, piece_chars=4)
    stream = client().chat.completions.create(model="small", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            seen.append(chunk)
    assert "launch codes" in caught.value.message
    assert isinstance(caught.value.body, dict) and caught.value.body["rule"] == "codes"
    sent = _text(seen)
    assert full.startswith(sent) and "LAUNCH" not in sent  # text before the window went out, the code never
    assert full.index("LAUNCH") - len(sent) <= 2 * HOLD_CHARS + 4  # held back: the window and one event
    assert not ext_proc_counter(ports.admin, "guarded", "streams_failed")  # the exchange ended well


def test_a_streamed_answer_is_redacted_as_it_goes(client: Client, upstream: Upstream) -> None:
    upstream.script = Script(text=LONG + "Her SSN is 123-45-6789. " + LONG, piece_chars=3)
    text = _text(_stream(client()))
    assert text == LONG + "Her SSN is <US_SSN>. " + LONG


def test_a_streamed_tool_call_is_checked_once_its_arguments_are_complete(
    client: Client, upstream: Upstream
) -> None:
    upstream.script = Script(text="", tool_calls=[("shell", {"command": "ls -l /workspace"})])
    chunks = _stream(client())
    fragments = [
        t.function.arguments for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []
    ]
    assert "".join(f or "" for f in fragments) == '{"command": "ls -l /workspace"}'
    upstream.script = Script(text="Running it.", tool_calls=[("shell", {"command": "rm -rf /home"})])
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client().chat.completions.create(model="small", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
            seen.append(chunk)
    assert isinstance(caught.value.body, dict) and caught.value.body["rule"] == "shell"
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in seen)  # no fragment of it left


def test_a_completion_palisade_cannot_read_is_refused(client: Client, upstream: Upstream) -> None:
    upstream.script = Script(text="LAUNCH-CODE-1", content_type="text/plain")
    with pytest.raises(openai.InternalServerError) as caught:
        _complete(client())
    assert caught.value.status_code == 502
    assert error_of(caught.value)["code"] == "invalid_upstream_body"


def test_a_fallback_reply_replaces_the_completion(client: Client, upstream: Upstream) -> None:
    upstream.script = Script(text="Here is something OFF-TOPIC.")
    answer = _complete(client())
    assert answer.choices[0].message.content == "Let us stay on your order."
    assert (answer.choices[0].finish_reason, answer.model) == ("stop", "small")


def test_a_fallback_reply_ends_a_stream_well_formed(client: Client, upstream: Upstream) -> None:
    upstream.script = Script(text=LONG + "Now something OFF-TOPIC. " + LONG, piece_chars=6)
    chunks = _stream(client())  # no error: the stream ends with the canned text, then [DONE]
    text = _text(chunks)
    assert text.endswith("Let us stay on your order.") and "OFF-TOPIC" not in text
    assert LONG.startswith(text.removesuffix("Let us stay on your order.")[:20])
    assert chunks[-1].choices[0].finish_reason == "stop"
