"""Redaction: findings' spans replaced by typed placeholders or by stable keyed pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from detectors.base import Finding

PSEUDONYM_HEX = 8  # hex digits of the keyed digest in a pseudonym: <EMAIL_ADDRESS_3f2a9c1b>
_PROCESS_KEY = os.urandom(32)  # when no key is configured: stable for this process only


class Pseudonymizer:
    """``<TYPE_xxxxxxxx>`` where xxxxxxxx is HMAC-SHA256(key, type, value): the same value always gets
    the same pseudonym under one key (a conversation stays coherent), and without the key a pseudonym
    says nothing about the value."""

    def __init__(self, key: bytes = b"") -> None:
        self._key = key or _PROCESS_KEY

    def __call__(self, kind: str, value: str) -> str:
        message = kind.encode("utf-8") + b"\0" + value.encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, message, hashlib.sha256).hexdigest()
        return f"<{kind}_{digest[:PSEUDONYM_HEX]}>"


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    kind: str  # the type of the first finding merged in (the earliest; of those, the longest)
    keyed: bool  # every finding merged in asked for a pseudonym


def merged_spans(text: str, findings: list[Finding], keyed: Collection[Finding] = ()) -> list[_Span]:
    """The findings' spans, overlapping ones merged into one that takes the first finding's type.

    The first is the one that starts earliest, and of those the longest (an email address, not the
    domain inside it). Offsets are indices of ``text`` (code points: an emoji or a Hebrew letter is
    one); spans outside the text are ignored.
    """
    spans: list[_Span] = []
    for f in sorted(findings, key=lambda f: (f.start, -f.end, f.type)):
        if not 0 <= f.start < f.end <= len(text):
            continue
        if spans and f.start < spans[-1].end:
            last = spans[-1]
            last.end = max(last.end, f.end)
            last.keyed = last.keyed and f in keyed
        else:
            spans.append(_Span(f.start, f.end, f.type, f in keyed))
    return spans


def redact(
    text: str,
    findings: list[Finding],
    pseudonym: Callable[[str, str], str] | None = None,
    keyed: Collection[Finding] = (),
) -> str:
    """Replace each finding's span with ``<TYPE>``; overlapping spans merge into one placeholder.

    With ``pseudonym``, a span made only of findings in ``keyed`` gets ``pseudonym(TYPE, value)``.
    """
    out, cursor = [], 0
    for span in merged_spans(text, findings, keyed):
        out.append(text[cursor : span.start])
        if pseudonym is not None and span.keyed:
            out.append(pseudonym(span.kind, text[span.start : span.end]))
        else:
            out.append(f"<{span.kind}>")
        cursor = span.end
    out.append(text[cursor:])
    return "".join(out)


def split_lines(texts: Sequence[str], redacted: str) -> tuple[str, ...] | None:
    """``redacted`` (the redaction of ``texts`` joined by newlines) cut back into one piece per text,
    or None when a redacted span ran across a line break (the pieces can no longer be told apart)."""
    lines = redacted.split("\n")
    counts = [text.count("\n") + 1 for text in texts]
    if len(lines) != sum(counts):
        return None
    pieces, start = [], 0
    for count in counts:
        pieces.append("\n".join(lines[start : start + count]))
        start += count
    return tuple(pieces)
