"""OpenAI chat bodies: the texts and tool calls to check in them, and the bodies Palisade writes instead."""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]  # where a value sits in a JSON body: keys and indices


class BodyError(ValueError):
    """A body that is not the chat request or completion it should be; the message names the field."""


@dataclass(frozen=True, slots=True)
class Slot:
    """One text of a body: where it sits, the role of its message, and the text."""

    path: Path
    role: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A tool call (a model asking for one), or a tool result (then ``result`` holds its text)."""

    name: str
    arguments: Mapping[str, Any]
    result: Slot | None = None


@dataclass(frozen=True, slots=True)
class Chat:
    """A chat request or completion, read: its body, and what in it is checked at which stage."""

    body: dict[str, Any]
    texts: tuple[Slot, ...]  # checked together: at `input` (a request) or one by one at `output`
    tool_calls: tuple[ToolUse, ...] = ()
    tool_results: tuple[ToolUse, ...] = ()

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True


def parse_request(raw: bytes, input_roles: Sequence[str]) -> Chat:
    """A chat completions request: the texts of messages in ``input_roles``, every tool call in the
    history, and every tool message (with the call it answers). Raises BodyError."""
    body = json_object(raw, "request")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BodyError("messages: required, a non-empty array")
    if body.get("stream") is True and body.get("n", 1) != 1:
        raise BodyError("n: a stream is guarded only with n = 1")
    texts: list[Slot] = []
    calls: list[ToolUse] = []
    results: list[ToolUse] = []
    asked: dict[str, ToolUse] = {}  # tool_call_id -> the call
    for i, message in enumerate(messages):
        where: Path = ("messages", i)
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BodyError(f"messages[{i}]: an object with a role")
        role = message["role"]
        own = texts_of(message.get("content"), (*where, "content"), role)
        if role == "tool":
            results.extend(answering(asked, message.get("tool_call_id", ""), own))
        elif role in input_roles:
            texts.extend(own)
        for made in _tool_calls(message.get("tool_calls"), (*where, "tool_calls")):
            calls.append(made.use)
            asked[made.id] = made.use
    return Chat(body, tuple(texts), tuple(calls), tuple(results))


def parse_completion(raw: bytes) -> Chat:
    """A chat completion: each choice's answer, and each tool call it asks for. Raises BodyError."""
    body = json_object(raw, "completion")
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise BodyError("choices: required, an array")
    texts: list[Slot] = []
    calls: list[ToolUse] = []
    for i, choice in enumerate(choices):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise BodyError(f"choices[{i}].message: required, an object")
        where: Path = ("choices", i, "message")
        texts.extend(texts_of(message.get("content"), (*where, "content"), "assistant"))
        calls.extend(call.use for call in _tool_calls(message.get("tool_calls"), (*where, "tool_calls")))
    return Chat(body, tuple(texts), tuple(calls))


def answering(asked: Mapping[str, ToolUse], call_id: object, slots: Sequence[Slot]) -> list[ToolUse]:
    """The tool results in ``slots``, each with the call (in ``asked`` by its id) it answers; an
    unnamed call where none was asked with that id."""
    call = asked.get(str(call_id), ToolUse("", {}))
    return [ToolUse(call.name, call.arguments, slot) for slot in slots]


def tool_arguments(raw: object, where: str) -> dict[str, Any]:
    """A tool call's ``arguments`` string, which must hold a JSON object. Raises BodyError."""
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise BodyError(f"{where}: a JSON object in a string")
    return arguments


@dataclass(frozen=True, slots=True)
class _Call:
    id: str
    use: ToolUse


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    """``raw`` as a JSON object; raises BodyError naming ``what`` (request, completion, ...)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"the {what} body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BodyError(f"the {what} body is not a JSON object")
    return body


def texts_of(content: object, where: Path, role: str) -> list[Slot]:
    """The texts of a message's content: a string, or the text parts of an array (others unchecked)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [Slot(where, role, content)]
    if not isinstance(content, list):
        raise BodyError(f"{dotted(where)}: a string or an array of parts")
    return [
        Slot((*where, j, "text"), role, part["text"])
        for j, part in enumerate(content)
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]


def _tool_calls(calls: object, where: Path) -> list[_Call]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise BodyError(f"{dotted(where)}: an array")
    found = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(function, dict) or not isinstance(name, str):
            raise BodyError(f"{dotted((*where, j))}: an object with function.name")
        arguments = tool_arguments(function.get("arguments"), f"{dotted((*where, j))}.function.arguments")
        found.append(_Call(str(call.get("id", "")), ToolUse(name, arguments)))
    return found


def dotted(where: Path) -> str:
    """``where`` as a field name in an error message: ``messages[2].content``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")


def rewritten(body: dict[str, Any], texts: Mapping[Path, str], model: str = "") -> bytes:
    """``body`` with the texts at their paths replaced, and its model replaced when ``model`` is given."""
    for path, text in texts.items():
        holder: Any = body
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = text
    if model:
        body["model"] = model
    return dump(body)


def dump(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def split_redacted(texts: Sequence[str], redacted: str) -> list[str]:
    """Each of ``texts`` as redacted, given ``redacted``, the redaction of their newline-joined content.

    Redaction only replaces spans with placeholders (which hold no line break), so while no span
    holds a line break the lines stay where they were. A span that does (or that runs from one
    text into the next) merges lines: they are lined up by their unchanged parts, and its
    placeholder stays in the text where the span starts."""
    lines = "\n".join(texts).split("\n")
    new_lines = redacted.split("\n")
    owner = [i for i, text in enumerate(texts) for _ in range(text.count("\n") + 1)]
    out: list[list[str]] = [[] for _ in texts]
    blocks = [(0, len(lines), 0, len(new_lines))]  # no line merged: each stays where it was
    if len(new_lines) != len(lines):
        matcher = difflib.SequenceMatcher(None, lines, new_lines, autojunk=False)
        blocks = [(i1, i2, j1, j2) for _, i1, i2, j1, j2 in matcher.get_opcodes()]
    for i1, i2, j1, j2 in blocks:
        if i2 - i1 == j2 - j1:
            for k in range(i2 - i1):
                out[owner[i1 + k]].append(new_lines[j1 + k])
        elif j2 > j1:
            out[owner[min(i1, len(owner) - 1)]].extend(new_lines[j1:j2])
    return ["\n".join(parts) for parts in out]


def error_body(message: str, kind: str, code: str, **extra: str) -> bytes:
    """An OpenAI-style error, ``{"error": {"message", "type", "code", "param"}}``, plus ``extra``."""
    return dump({"error": {"message": message, "type": kind, "code": code, "param": None, **extra}})


def reply_completion(model: str, text: str, reply_id: str) -> bytes:
    """A whole chat completion whose one answer is ``text``."""
    message = {"role": "assistant", "content": text, "refusal": None}
    choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return dump(_envelope(reply_id, "chat.completion", model) | {"choices": [choice], "usage": usage})


def reply_chunks(model: str, text: str, reply_id: str) -> list[dict[str, Any]]:
    """The chunks of a stream whose one answer is ``text``: the text, then its end."""
    envelope = _envelope(reply_id, "chat.completion.chunk", model)
    delta = {"role": "assistant", "content": text}
    return [
        envelope | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        envelope | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]


def _envelope(reply_id: str, kind: str, model: str) -> dict[str, Any]:
    return {"id": reply_id, "object": kind, "created": int(time.time()), "model": model}
