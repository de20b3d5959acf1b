"""A streamed answer checked as it passes: text held back by a bounded window, tool calls whole.

The bound: text leaves only once ``hold`` characters have arrived after it, so any match of up to
``hold`` characters is checked (at `output`) before any of it leaves. The first Check is made as
soon as ``hold`` characters follow the first event's text (which then leaves), each later one each
time ``2 * hold`` characters wait, on the text waiting (at most ``2 * hold`` plus one
event's text), and one at the end of the answer on what is left; so no more than that is ever held
back. A tool call is
held until its arguments are complete (the next tool call starts, or the answer ends), then
checked at `tool_call`. Whatever the outcome stops the answer (BLOCK, ESCALATE, a fallback reply
or model), the client gets what already left, then an error event (or the canned reply) and the
stream's end (``[DONE]`` in a chat); the rest of the upstream's stream is dropped. What the events
of an API hold (chat chunks, Responses events) is its ``Dialect``'s to read and write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dsl.types import Outcome, Stage
from engine.envoy.checks import Asked, Checks, Verdict, verdict
from engine.envoy.openai import BodyError, Slot, ToolUse, reply_chunks, tool_arguments
from engine.envoy.sse import DONE, Event, Reassembler, StreamError, data_event, event

Stopper = Callable[[Verdict], bytes]  # the events that end a stream for a verdict that stops it


@dataclass(frozen=True, slots=True)
class ToolPart:
    """Part of a tool call an event carries: fragments of its name and arguments, or (``whole``)
    the call's complete name and arguments, which replace the fragments before them."""

    key: int  # which call of the answer
    name: str = ""
    arguments: str = ""
    whole: bool = False


@dataclass(frozen=True, slots=True)
class Read:
    """What one event carries: text of the answer, parts of tool calls, and whether it ends a part
    of the answer (what waits is then checked and sent)."""

    text: str = ""
    tools: tuple[ToolPart, ...] = ()
    finished: bool = False


class Dialect(Protocol):
    """How one API's stream is read and written; one object per stream (it may keep state)."""

    closing: bytes  # written after the last event (a chat's [DONE])

    def read(self, chunk: dict[str, Any]) -> Read:
        """What ``chunk`` (an event's JSON) carries. Raises StreamError."""
        ...

    def rewrite(self, chunk: dict[str, Any], text: str) -> None:
        """Make ``text`` the text ``chunk`` carries."""
        ...

    def leaving(self, chunk: dict[str, Any], raw: bytes, changed: bool) -> bytes:
        """The bytes of an event as it leaves: ``raw`` as received, or its ``chunk`` written anew."""
        ...

    def error(self, body: bytes) -> bytes:
        """The event that ends a stream with ``body``, an OpenAI-style error."""
        ...

    def reply(self, model: str, text: str, reply_id: str) -> bytes:
        """The events of a canned answer ``text`` (after what already left, if anything)."""
        ...


class ChatStream:
    """A streamed chat completion: ``data:`` chunks with one choice's delta, then ``[DONE]``."""

    closing = DONE

    def read(self, chunk: dict[str, Any]) -> Read:
        delta = _delta(chunk)
        text = delta.get("content")
        tools = []
        for part in delta.get("tool_calls") or []:
            if not isinstance(part, dict):
                raise StreamError("a tool call fragment that is not an object")
            function = part.get("function") or {}
            name, arguments = function.get("name") or "", function.get("arguments") or ""
            tools.append(ToolPart(part.get("index", 0), name, arguments))
        return Read(text if isinstance(text, str) else "", tuple(tools), _finished(chunk))

    def rewrite(self, chunk: dict[str, Any], text: str) -> None:
        """Its log probabilities, which would show the tokens, go too."""
        for choice in chunk.get("choices") or []:
            choice.pop("logprobs", None)
            choice["delta"]["content"] = text

    def leaving(self, chunk: dict[str, Any], raw: bytes, changed: bool) -> bytes:
        return event(chunk) if changed else raw

    def error(self, body: bytes) -> bytes:
        return data_event(body)

    def reply(self, model: str, text: str, reply_id: str) -> bytes:
        return b"".join(event(c) for c in reply_chunks(model, text, reply_id))


@dataclass(slots=True)
class _Held:
    """An event not yet sent: its text (delta content), the tool call it carries part of, if cleared."""

    event: Event
    chunk: dict[str, Any]
    text: str = ""
    tool: int | None = None
    cleared: bool = False
    changed: bool = False  # its chunk was rewritten: send the chunk, not the event as received


@dataclass(slots=True)
class _ToolCall:
    name: str = ""
    arguments: str = ""
    events: list[_Held] = field(default_factory=list)


class StreamGuard:
    """Checks one streamed answer; ``feed`` takes each body chunk and gives what may leave now."""

    def __init__(self, checks: Checks, hold: int, max_bytes: int, stop: Stopper, dialect: Dialect) -> None:
        self.checks = checks
        self.hold = hold
        self.stop = stop
        self.dialect = dialect
        self.stopped = False
        self._events = Reassembler(max_bytes)
        self._held: list[_Held] = []
        self._tool: tuple[int, _ToolCall] | None = None
        self._ending = b""
        self._checked = False  # a Check at `output` was made: the next waits for 2 * hold characters

    def feed(self, chunk: bytes, end: bool) -> bytes:
        """What may leave after ``chunk`` (all that is left when ``end``); raises StreamError and
        request_codec.InvalidRequest when the stream cannot be checked."""
        if self.stopped:
            return b""
        out = bytearray()
        events = self._events.feed(chunk) + (self._events.finish() if end else [])
        for received in events:
            out += self._take(received)
            if self.stopped:
                return bytes(out)
        if end:
            out += self._flush()
        return bytes(out)

    def fail(self, body: bytes) -> bytes:
        """End the stream now: what was cleared, then the error event of ``body`` and the end."""
        self._end(lambda: self.dialect.error(body))
        return self._release()

    def _take(self, received: Event) -> bytes:
        if received.done:
            return self._flush() + (b"" if self.stopped else received.raw)
        if not received.data:  # a comment or a keep-alive
            self._held.append(_Held(received, {}, cleared=True))
            return self._release()
        chunk = _chunk(received)
        read = self.dialect.read(chunk)
        held = _Held(received, chunk, read.text, cleared=not read.text)
        self._held.append(held)
        self._tool_parts(held, read.tools)
        if not self.stopped and read.finished:
            return self._flush()
        if not self.stopped and self._due():
            self._check_text(flush=False)
        return self._release()

    def _tool_parts(self, held: _Held, parts: tuple[ToolPart, ...]) -> None:
        """Add the tool call parts of ``held`` to the call they belong to; a call is checked once
        the next one starts."""
        for part in parts:
            if self._tool is not None and self._tool[0] != part.key:
                self._check_tool()
            if self._tool is None:
                self._tool = (part.key, _ToolCall())
            call = self._tool[1]
            if part.whole:
                call.name, call.arguments = part.name, part.arguments
            else:
                call.name += part.name
                call.arguments += part.arguments
            if len(call.arguments) > self._events.max_bytes:
                raise StreamError(f"a tool call's arguments longer than {self._events.max_bytes} characters")
            held.tool, held.cleared = part.key, False
            call.events.append(held)

    def _due(self) -> bool:
        """Whether to check the waiting text now: the first time, once ``hold`` characters follow its
        first event (which may then leave); later, once ``2 * hold`` characters wait."""
        sizes = [len(h.text) for h in self._held if h.text and not h.cleared]
        if self._checked:
            return sum(sizes) >= 2 * self.hold
        return bool(sizes) and sum(sizes) - sizes[0] >= self.hold

    def _waiting_chars(self) -> int:
        return sum(len(h.text) for h in self._held if not h.cleared)

    def _flush(self) -> bytes:
        """Check what waits (the open tool call, the text), then send it all."""
        if self._tool is not None:
            self._check_tool()
        if not self.stopped and self._waiting_chars():
            self._check_text(flush=True)
        return self._release()

    def _check_text(self, flush: bool) -> None:
        waiting = [h for h in self._held if h.text and not h.cleared]
        slot = Slot((), "assistant", "".join(h.text for h in waiting))
        found = self._apply(self.checks.check(Stage.OUTPUT, [slot]))
        self._checked = True
        if self.stopped:
            return
        if found.texts:
            for i, held in enumerate(waiting):  # the redacted text in the first, the others emptied
                held.changed = True
                self.dialect.rewrite(held.chunk, found.texts[()] if i == 0 else "")
            flush = True
        kept = 0
        for held in reversed(waiting):
            if (flush or kept >= self.hold) and held.tool is None:
                held.cleared = True
            kept += len(held.text)

    def _check_tool(self) -> None:
        assert self._tool is not None
        _, call = self._tool
        self._tool = None
        try:
            arguments = tool_arguments(call.arguments, f"the arguments of tool call {call.name!r}")
        except BodyError as exc:
            raise StreamError(str(exc)) from None
        self._apply(self.checks.check(Stage.TOOL_CALL, tool=ToolUse(call.name, arguments)))
        for held in call.events:
            held.cleared = True

    def _apply(self, asked: Asked) -> Verdict:
        found = verdict([asked])
        if found.outcome in (Outcome.BLOCK, Outcome.ESCALATE) or found.reply is not None or found.model:
            self._end(lambda: self.stop(found))
        return found

    def _end(self, last: Callable[[], bytes]) -> None:
        """Stop: what was cleared may leave, then ``last()`` (made once that left) and the stream's
        end; the rest is dropped."""
        released = self._release()
        self._ending = released + last() + self.dialect.closing
        self.stopped = True
        self._held.clear()

    def _release(self) -> bytes:
        """The cleared events at the front, in order (once stopped: the stream's ending)."""
        if self.stopped:
            ending, self._ending = self._ending, b""
            return ending
        out = bytearray()
        while self._held and self._held[0].cleared:
            held = self._held.pop(0)
            out += self.dialect.leaving(held.chunk, held.event.raw, held.changed)
        return bytes(out)


def _chunk(received: Event) -> dict[str, Any]:
    try:
        chunk = json.loads(received.data)
    except ValueError:
        raise StreamError("an event whose data is not JSON") from None
    if not isinstance(chunk, dict):
        raise StreamError("an event whose data is not a JSON object")
    return chunk


def _delta(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = chunk.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    delta = first.get("delta")
    return delta if isinstance(delta, dict) else {}


def _finished(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    return isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason") for c in choices)
