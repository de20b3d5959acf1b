"""OpenAI Responses API bodies and streams: what is checked in them, and what Palisade writes instead."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from engine.envoy.openai import (
    BodyError,
    Chat,
    Path,
    Slot,
    ToolUse,
    answering,
    dotted,
    dump,
    json_object,
    texts_of,
    tool_arguments,
)
from engine.envoy.sse import StreamError, event
from engine.envoy.stream import Read, ToolPart

TEXT_DELTA = "response.output_text.delta"
ENDS = ("response.completed", "response.incomplete", "response.failed")  # the last event of a stream
# events that end a part of the answer: what waits is checked and sent (those that repeat a text
# leave with it as it left, once a redaction changed it)
_FINISHING = frozenset(
    {"response.output_text.done", "response.content_part.done", "response.output_item.done", *ENDS}
)
_USAGE = {
    "input_tokens": 0,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 0,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 0,
}


def parse_request(raw: bytes, input_roles: Sequence[str]) -> Chat:
    """A Responses request: ``instructions`` (as a system message) and the ``input`` messages in
    ``input_roles`` (a string input is a user message), every function call in the input, and
    every function call output (with the call it answers). Other items are not checked. Raises
    BodyError."""
    body = json_object(raw, "request")
    texts: list[Slot] = []
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise BodyError("instructions: a string")
    if instructions and "system" in input_roles:
        texts.append(Slot(("instructions",), "system", instructions))
    given = body.get("input")
    if isinstance(given, str):
        texts += [Slot(("input",), "user", given)] if "user" in input_roles else []
        return Chat(body, tuple(texts))
    if not isinstance(given, list) or not given:
        raise BodyError("input: required, a string or a non-empty array of items")
    calls: list[ToolUse] = []
    results: list[ToolUse] = []
    asked: dict[str, ToolUse] = {}  # call_id -> the call
    for i, item in enumerate(given):
        where: Path = ("input", i)
        if not isinstance(item, dict):
            raise BodyError(f"input[{i}]: an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if not isinstance(role, str):
                raise BodyError(f"input[{i}]: a message with a role")
            own = texts_of(item.get("content"), (*where, "content"), role)
            texts.extend(own if role in input_roles else ())
        elif kind == "function_call":
            call = asked[str(item.get("call_id", ""))] = _function_call(item, where)
            calls.append(call)
        elif kind == "function_call_output":
            own = texts_of(item.get("output"), (*where, "output"), "tool")
            results.extend(answering(asked, item.get("call_id", ""), own))
    return Chat(body, tuple(texts), tuple(calls), tuple(results))


def parse_response(raw: bytes) -> Chat:
    """A Response: the text of each of its messages' output_text parts, and each function call it
    asks for. Other items are not checked. Raises BodyError."""
    body = json_object(raw, "response")
    output = body.get("output")
    if not isinstance(output, list):
        raise BodyError("output: required, an array")
    texts: list[Slot] = []
    calls: list[ToolUse] = []
    for i, item in enumerate(output):
        if not isinstance(item, dict):
            raise BodyError(f"output[{i}]: an object")
        if item.get("type") == "message":
            content = item.get("content")
            if not isinstance(content, list):
                raise BodyError(f"output[{i}].content: an array")
            texts.extend(texts_of(content, ("output", i, "content"), "assistant"))
        elif item.get("type") == "function_call":
            calls.append(_function_call(item, ("output", i)))
    return Chat(body, tuple(texts), tuple(calls))


def _function_call(item: dict[str, Any], where: Path) -> ToolUse:
    name = item.get("name")
    if not isinstance(name, str):
        raise BodyError(f"{dotted(where)}: a function_call with a name")
    return ToolUse(name, tool_arguments(item.get("arguments"), f"{dotted(where)}.arguments"))


def reply_response(model: str, text: str, reply_id: str) -> bytes:
    """A whole completed Response whose one output is a message with ``text``."""
    return dump(_response(reply_id, model, "completed", [_message(reply_id, text)]))


def _response(reply_id: str, model: str, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": reply_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "error": None,
        "incomplete_details": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _USAGE if status == "completed" else None,
    }


def _message(reply_id: str, text: str | None) -> dict[str, Any]:
    """The canned answer as a message item; in progress (no content yet) when ``text`` is None."""
    content = [] if text is None else [_text_part(text)]
    status = "in_progress" if text is None else "completed"
    item_id = "msg_" + reply_id.removeprefix("resp_")
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


class ResponsesStream:
    """A streamed Response: named events (``event:`` lines) whose data carries its ``type`` and a
    ``sequence_number``; text in ``response.output_text.delta`` events, function calls in
    ``response.output_item.added``, ``response.function_call_arguments.delta`` and a complete
    ``response.output_item.done``. Events that repeat a text (``.done`` ones and the final
    response) leave with the text as it left, once a redaction changed it."""

    closing = b""  # a Responses stream has no [DONE]

    def __init__(self) -> None:
        self._sent: dict[tuple[int, int], str] = {}  # (output_index, content_index) -> text that left
        self._rewritten = False
        self._sequence = -1  # the sequence_number of the last event that left
        self._response: dict[str, Any] | None = None  # response.created's response, once it left
        self._items = 0  # output items that began

    def read(self, chunk: dict[str, Any]) -> Read:
        kind = chunk.get("type")
        if not isinstance(kind, str):
            raise StreamError("an event whose data has no type")
        if kind == TEXT_DELTA:
            _index(chunk)
            return Read(_string(chunk, "delta", kind))
        call = _call(chunk) if kind in ("response.output_item.added", "response.output_item.done") else None
        if call is not None:  # it begins (its arguments still to come) or is complete
            done = kind == "response.output_item.done"
            arguments = _string(call, "arguments", kind) if done else str(call.get("arguments") or "")
            part = ToolPart(_index(chunk), _string(call, "name", kind), arguments, whole=done)
            return Read(tools=(part,), finished=done)
        if kind == "response.function_call_arguments.delta":
            return Read(tools=(ToolPart(_index(chunk), arguments=_string(chunk, "delta", kind)),))
        if kind == "response.function_call_arguments.done":
            return Read(tools=(ToolPart(_index(chunk)),))
        return Read(finished=kind in _FINISHING)

    def rewrite(self, chunk: dict[str, Any], text: str) -> None:
        """Its log probabilities, which would show the tokens, go too."""
        chunk["delta"], chunk["logprobs"] = text, []
        self._rewritten = True

    def leaving(self, chunk: dict[str, Any], raw: bytes, changed: bool) -> bytes:
        kind = str(chunk.get("type", ""))
        if kind == TEXT_DELTA:
            key = _part_key(chunk)
            self._sent[key] = self._sent.get(key, "") + chunk["delta"]
        elif self._rewritten and kind in _FINISHING:
            _restate(chunk, self._sent)
            changed = True
        self._note(kind, chunk)
        return event(chunk, kind) if changed else raw

    def _note(self, kind: str, chunk: dict[str, Any]) -> None:
        sequence = chunk.get("sequence_number")
        self._sequence = max(self._sequence, sequence if isinstance(sequence, int) else -1)
        if kind == "response.created" and isinstance(chunk.get("response"), dict):
            self._response = chunk["response"]
        if kind == "response.output_item.added":
            self._items = max(self._items, _index(chunk) + 1)

    def error(self, body: bytes) -> bytes:
        """An ``error`` event: the error's fields (its ``code`` says why) but its ``type``."""
        error = {key: value for key, value in json.loads(body)["error"].items() if key != "type"}
        return self._events([("error", error)])

    def reply(self, model: str, text: str, reply_id: str) -> bytes:
        """A message item after those that began, with ``text``, and a completed response that holds
        only it (a response already created keeps its id)."""
        events: list[tuple[str, dict[str, Any]]] = []
        response = self._response
        if response is None:
            response = _response(reply_id, model, "in_progress", [])
            events.append(("response.created", {"response": response}))
        index, begun, done = self._items, _message(reply_id, None), _message(reply_id, text)
        where = {"item_id": done["id"], "output_index": index, "content_index": 0}
        events += [
            ("response.output_item.added", {"output_index": index, "item": begun}),
            ("response.content_part.added", where | {"part": _text_part("")}),
            (TEXT_DELTA, where | {"delta": text, "logprobs": []}),
            ("response.output_text.done", where | {"text": text, "logprobs": []}),
            ("response.content_part.done", where | {"part": _text_part(text)}),
            ("response.output_item.done", {"output_index": index, "item": done}),
        ]
        completed = response | {"status": "completed", "output": [done], "usage": _USAGE}
        return self._events([*events, ("response.completed", {"response": completed})])

    def _events(self, events: list[tuple[str, dict[str, Any]]]) -> bytes:
        out = bytearray()
        for kind, data in events:
            self._sequence += 1
            out += event({"type": kind, **data, "sequence_number": self._sequence}, kind)
        return bytes(out)


def _index(chunk: dict[str, Any]) -> int:
    index = chunk.get("output_index")
    if not isinstance(index, int) or index < 0:
        raise StreamError(f"a {chunk.get('type')} event without an output_index")
    return index


def _string(holder: dict[str, Any], key: str, kind: str) -> str:
    value = holder.get(key)
    if not isinstance(value, str):
        raise StreamError(f"a {kind} event whose {key} is not a string")
    return value


def _call(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """The function call item of an output item event, if it is one."""
    item = chunk.get("item")
    return item if isinstance(item, dict) and item.get("type") == "function_call" else None


def _part_key(chunk: dict[str, Any]) -> tuple[int, int]:
    content_index = chunk.get("content_index")
    return (_index(chunk), content_index if isinstance(content_index, int) else 0)


def _restate(chunk: dict[str, Any], sent: dict[tuple[int, int], str]) -> None:
    """Put the texts as they left into an event that repeats them."""
    kind = chunk["type"]
    if kind in ENDS:
        response = chunk.get("response")
        output = response.get("output") if isinstance(response, dict) else None
        for i, item in enumerate(output if isinstance(output, list) else []):
            _restate_item(item, i, sent)
    elif kind == "response.output_item.done":
        _restate_item(chunk.get("item"), _index(chunk), sent)
    elif _part_key(chunk) in sent and kind == "response.output_text.done":
        chunk["text"], chunk["logprobs"] = sent[_part_key(chunk)], []
    elif _part_key(chunk) in sent:  # response.content_part.done
        _restate_part(chunk.get("part"), sent[_part_key(chunk)])


def _restate_item(item: object, index: int, sent: dict[tuple[int, int], str]) -> None:
    content = item.get("content") if isinstance(item, dict) else None
    for j, part in enumerate(content if isinstance(content, list) else []):
        if (index, j) in sent:
            _restate_part(part, sent[(index, j)])


def _restate_part(part: object, text: str) -> None:
    if isinstance(part, dict) and part.get("type") == "output_text":
        part["text"] = text
        part.pop("logprobs", None)
