"""Server-sent events: whole events reassembled from body chunks split anywhere, and events written."""

from __future__ import annotations

from dataclasses import dataclass

from engine.envoy.openai import dump

DONE = b"data: [DONE]\n\n"


class StreamError(ValueError):
    """A stream Palisade cannot read; the message says why."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event as received (its blank line included) and its data lines joined."""

    raw: bytes
    data: str

    @property
    def done(self) -> bool:
        return self.data == "[DONE]"


class Reassembler:
    """Collects body chunks and hands out each event once its blank line has arrived. Lines may end
    in LF or CRLF (a CRLF split between chunks too); an event may not grow past ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._pending = b""

    def feed(self, chunk: bytes) -> list[Event]:
        """The events that ``chunk`` completes, in order. Raises StreamError."""
        pending = (self._pending + chunk).replace(b"\r\n", b"\n")
        *complete, self._pending = pending.split(b"\n\n")
        if len(self._pending) > self.max_bytes:
            raise StreamError(f"an event longer than {self.max_bytes} bytes")
        return [_event(raw + b"\n\n") for raw in complete if raw.strip()]

    def finish(self) -> list[Event]:
        """At the end of the body: the last event if its blank line never came."""
        rest, self._pending = self._pending, b""
        return [_event(rest + b"\n\n")] if rest.strip() else []


def _event(raw: bytes) -> Event:
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise StreamError("an event that is not UTF-8") from None
    data = [line[5:].removeprefix(" ") for line in lines if line.startswith("data:")]
    return Event(raw, "\n".join(data))


def event(data: object, name: str = "") -> bytes:
    """``data`` as one event: its JSON on a data line, after an event line when ``name`` is given."""
    return data_event(dump(data), name)


def data_event(data: bytes, name: str = "") -> bytes:
    """One event whose data is ``data`` (one line), named ``name`` (an ``event:`` line) if given."""
    named = b"event: " + name.encode("utf-8") + b"\n" if name else b""
    return named + b"data: " + data + b"\n\n"
