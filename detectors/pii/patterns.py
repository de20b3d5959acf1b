"""presidio's pattern recognizers run directly: patterns precompiled, the costliest scanned near an anchor."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

import regex
from presidio_analyzer import EntityRecognizer, PatternRecognizer
from presidio_analyzer.predefined_recognizers import EmailRecognizer, UrlRecognizer

from detectors.base import DetectorError
from detectors.pii.findings import Raw, remove_duplicates
from detectors.pii.offline import OFFLINE_TLD
from detectors.textscan import run_timed


def _email_valid(value: str) -> bool | None:
    """EmailRecognizer.validate_result on the bundled suffix list (presidio's module-level one may fetch)."""
    return OFFLINE_TLD(value).fqdn != ""


# "Non schema URL" tries presidio's 600-TLD alternation at every letter of the text. Every match has
# a dot followed by a letter (the TLD) within its first 261 characters, all of them from the host
# class, so this lookahead is implied by the pattern and only skips positions where it cannot match.
_URL_PREFILTER = r"(?=[a-z0-9.\-]{0,261}[.][a-z])"


def _source(recognizer: PatternRecognizer, pattern: Any) -> str:
    if isinstance(recognizer, UrlRecognizer) and pattern.regex == "(?i)" + UrlRecognizer.BASE_URL_REGEX:
        return "(?i)" + _URL_PREFILTER + UrlRecognizer.BASE_URL_REGEX
    return str(pattern.regex)


# The costliest of presidio's patterns cannot match across a space, and each match contains its
# anchor below. Their matches then lie inside the space-free chunks of the text that hold an anchor,
# and scanning only those chunks (finditer with pos and endpos) finds exactly what scanning the whole
# text finds: no element of these patterns (literal, class, repetition) matches a space or an empty
# string, and their only context checks (\b; lookarounds that refuse word characters, ":", or "."
# and a digit; the URL lookahead above, which reads no space) answer next to a space as they do at
# either end of a string (the regex module reads the text before pos, and ends it at endpos). Each
# anchor is keyed by the SHA-256 of the pattern text it was read from and holds with presidio's
# default flags only: another pattern, or other flags, scan the whole text
# (tests/detectors/test_detector_pii_prefilters.py checks that they apply, and compares both scans).
_ANCHORED_FLAGS = regex.IGNORECASE | regex.MULTILINE | regex.DOTALL
ANCHORS: dict[str, str] = {
    # Non schema URL: the dot before the TLD, and its first letter (all 675 TLDs are ASCII letters;
    # a non-ASCII character is let through in case one matches a letter without case)
    "7405c3a8b8c39f4d": r"(?i)[.](?:[a-z]|[^\x00-\x7f])",
    # Email (Medium): its "[@]"
    "004723abbb67ff6c": "@",
    # IPv4_mapped, IPv4_embedded, IPv6 (every alternative) and IPv6_unspecified: a ":"
    "5def597d3b4dac73": ":",
    "66197b1f8e63cd27": ":",
    "c4f79b73053cd5f0": ":",
    "c696285024ae5b47": ":",
    # Driver License - Alphanumeric (weak): every one of its alternatives has a [0-9]
    "ab1eb0b240f24580": "[0-9]",
    # USA DEA Certificate Number (weak): both alternatives end with \d{7}
    "8b00da21c7ca480a": r"\d",
}


# PAN (Low) is `\b((?=.*?[a-zA-Z])(?=.*?[0-9]{4})[\w@#$%^?~-]{10})\b`. With DOTALL, its lookaheads
# read on towards the end of the text from every word boundary: time in the square of the text's
# length where no four digits follow (0.2 s for 10,000 characters). Each lookahead holds where its
# body matches at or after the position: up to the last start of a match of the body, and nowhere
# after it. So the pattern's matches are those of the pattern without the lookaheads that start no
# later than each body's last start (found by `.*(body)` at the start of the text, whose greedy `.*`
# backs off from the end). Keyed and flagged as ANCHORS are; tests/detectors/test_detector_long_texts.py
# checks that it applies, and compares both scans.
LOOKAHEADS: dict[str, tuple[str, tuple[str, ...]]] = {
    "f8d9ff5876327c15": (r"\b([\w@#$%^?~-]{10})\b", ("[a-zA-Z]", "[0-9]{4}")),
}


def digest(source: str) -> str:
    """The key of a pattern text in ANCHORS and LOOKAHEADS: its SHA-256, the first 16 hex digits."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def _compiled(recognizer: Any, pattern: Any) -> CompiledPattern:
    """A recognizer's pattern as the runner scans it: near its anchor, or without its lookaheads."""
    flags = recognizer.global_regex_flags
    key = digest(str(pattern.regex)) if flags == _ANCHORED_FLAGS else ""
    if key in LOOKAHEADS:
        body, needed = LOOKAHEADS[key]
        lasts = tuple(regex.compile(f".*({n})", flags=flags) for n in needed)
        return CompiledPattern(regex.compile(body, flags=flags), pattern.score, lasts=lasts)
    anchor = ANCHORS.get(key)
    return CompiledPattern(
        regex.compile(_source(recognizer, pattern), flags=flags),
        pattern.score,
        regex.compile(anchor, flags=flags) if anchor is not None else None,
    )


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """One of a recognizer's patterns, compiled, with its score and its anchor (if it has one)."""

    compiled: regex.Pattern[str]
    score: float
    anchor: regex.Pattern[str] | None = None  # set: matches lie in space-free chunks holding one
    lasts: tuple[regex.Pattern[str], ...] = ()  # set: matches start no later than each one's group 1

    def matches(self, text: str, timeout_s: float) -> list[regex.Match[str]]:
        """finditer over the text, or over the chunks that hold an anchor, or up to the last start
        its lookaheads allow; within the time run_timed gives either way (a finditer's timeout bounds
        the whole iteration, so the chunks share one deadline)."""
        return run_timed(lambda concurrent, left_s: self._scan(text, concurrent, left_s), text, timeout_s)

    def _scan(self, text: str, concurrent: bool, timeout_s: float) -> list[regex.Match[str]]:
        if self.lasts:
            return self._up_to_last(text, concurrent, time.monotonic() + timeout_s)
        if self.anchor is None:
            return list(self.compiled.finditer(text, concurrent=concurrent, timeout=timeout_s))
        deadline = time.monotonic() + timeout_s
        found: list[regex.Match[str]] = []
        pos = 0
        search = self.anchor.search
        while (hit := search(text, pos, concurrent=concurrent, timeout=_left(deadline))) is not None:
            start = text.rfind(" ", 0, hit.start()) + 1
            end = text.find(" ", hit.start())
            end = len(text) if end < 0 else end
            found += self.compiled.finditer(text, start, end, concurrent=concurrent, timeout=_left(deadline))
            pos = end
        return found

    def _up_to_last(self, text: str, concurrent: bool, deadline: float) -> list[regex.Match[str]]:
        """The matches that start no later than the last start of each lookahead's body (LOOKAHEADS)."""
        limit = len(text)
        for last in self.lasts:
            found = last.match(text, concurrent=concurrent, timeout=_left(deadline))
            limit = min(limit, found.start(1) if found is not None else -1)
        if limit < 0:
            return []
        matches = self.compiled.finditer(text, concurrent=concurrent, timeout=_left(deadline))
        return list(takewhile(lambda m: m.start() <= limit, matches))


def timed_out(error: TimeoutError) -> DetectorError:
    """The error a pattern that ran past its time raises (``error``: run_timed's, which says how long)."""
    return DetectorError(f"pii pattern {error}")


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("regex timeout")
    return left


class PatternRunner:
    """One PatternRecognizer's patterns, precompiled, scored as PatternRecognizer.analyze scores them."""

    def __init__(self, recognizer: Any, index: int) -> None:
        self.patterns = [_compiled(recognizer, p) for p in recognizer.patterns]
        self.type = recognizer.supported_entities[0]
        self.index = index
        self.validate: Callable[[str], bool | None] = (
            _email_valid if isinstance(recognizer, EmailRecognizer) else recognizer.validate_result
        )
        self.invalidate = recognizer.invalidate_result

    def run(self, text: str, timeout_s: float) -> list[Raw]:
        found: list[Raw] = []
        for pattern in self.patterns:
            try:
                matches = pattern.matches(text, timeout_s)
            except TimeoutError as exc:
                raise timed_out(exc) from exc
            found += (r for m in matches if (r := self._score(text, m, pattern.score)) is not None)
        return remove_duplicates(found)

    def _score(self, text: str, match: regex.Match[str], score: float) -> Raw | None:
        start, end = match.span()
        if start == end:
            return None
        value = text[start:end]
        valid = self.validate(value)
        if valid is not None:
            score = EntityRecognizer.MAX_SCORE if valid else EntityRecognizer.MIN_SCORE
        if self.invalidate(value):
            score = EntityRecognizer.MIN_SCORE
        return Raw(self.type, start, end, score, self.index) if score > EntityRecognizer.MIN_SCORE else None
