"""What PhoneNumberMatcher tries in a text before a region plays a part: candidates, the strings it parses."""

from __future__ import annotations

import re
from dataclasses import dataclass

from phonenumbers import normalize_digits_only

# Private names of phonenumbers, with no public equivalent: PhoneNumberMatcher's own patterns for
# finding candidates, trimming them, skipping dates and time stamps, and splitting a candidate into
# inner groups. The matcher's steps before parsing do not depend on the region, so they run here once
# per text, with the same patterns, instead of once per region inside PhoneNumberMatcher.
# tests/detectors/test_detector_pii_phonenumbers.py fails when they change.
from phonenumbers.phonenumbermatcher import (
    _INNER_MATCHES,
    _PATTERN,
    _SLASH_SEPARATED_DATES,
    _TIME_STAMPS,
    _TIME_STAMPS_SUFFIX,
)
from phonenumbers.phonenumberutil import _SECOND_NUMBER_START_PATTERN, _UNWANTED_END_CHAR_PATTERN

_NON_DIGITS = re.compile(r"[^0-9]")
_PLUS = frozenset("+\uff0b")
_EXTENSION_MARKS = frozenset("#\uff03~\uff5e,;")  # with letters: what can start an extension


def digits_of(candidate: str) -> str:
    """normalize_digits_only(candidate), with a fast path for ASCII."""
    return _NON_DIGITS.sub("", candidate) if candidate.isascii() else normalize_digits_only(candidate)


def filterable(candidate: str) -> bool:
    """Candidates the national-number check applies to: no plus sign, letters or extension marks."""
    return not any(c in _PLUS or c in _EXTENSION_MARKS or c.isalpha() for c in candidate)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One string PhoneNumberMatcher would parse: the candidate or a group inside it."""

    text: str
    offset: int
    digits: str | None  # None: not filterable, always parsed
    plus: bool
    check_tries: bool  # the matcher checks its try budget before this attempt


@dataclass(frozen=True, slots=True)
class Candidate:
    """What PhoneNumberMatcher._extract_match does with a candidate, less the region-specific parsing."""

    skipped: bool  # a date or a time stamp
    attempts: tuple[Attempt, ...]  # the whole candidate, then its inner groups in the matcher's order


def _attempt(text: str, offset: int, check_tries: bool) -> Attempt:
    plus = text.lstrip()[:1] in _PLUS
    return Attempt(text, offset, digits_of(text) if filterable(text) else None, plus, check_tries)


def _candidate(text: str, candidate: str, offset: int) -> Candidate:
    """_extract_match's date and time-stamp checks, then the attempts of _extract_inner_match."""
    if _SLASH_SEPARATED_DATES.search(candidate):
        return Candidate(True, ())
    if _TIME_STAMPS.search(candidate) and _TIME_STAMPS_SUFFIX.match(text[offset + len(candidate) :]):
        return Candidate(True, ())
    attempts = [_attempt(candidate, offset, False)]
    for inner in _INNER_MATCHES:
        attempts += _inner_attempts(inner, candidate, offset)
    return Candidate(False, tuple(attempts))


def _inner_attempts(inner: re.Pattern[str], candidate: str, offset: int) -> list[Attempt]:
    """The groups an inner pattern of the matcher splits a candidate into, and what precedes the first."""
    attempts: list[Attempt] = []
    group_match = inner.search(candidate)
    first = True
    while group_match:
        if first:
            head = _trim(candidate[: group_match.start()])
            attempts.append(_attempt(head, offset, True))
        group = _trim(group_match.group(1))
        attempts.append(_attempt(group, offset + group_match.start(1), not first))
        first = False
        group_match = inner.search(candidate, group_match.start() + 1)
    return attempts


def _trim(candidate: str) -> str:
    trailing = _UNWANTED_END_CHAR_PATTERN.search(candidate)
    return candidate[: trailing.start()] if trailing else candidate


class Candidates:
    """Per text, across regions: the candidates found, and their attempts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._searches: dict[int, tuple[int, str] | None] = {}
        self._candidates: dict[tuple[str, int], Candidate] = {}

    def search(self, index: int) -> tuple[int, str] | None:
        """The next candidate at or after ``index``, and where it starts (PhoneNumberMatcher._find's)."""
        if index not in self._searches:
            match = _PATTERN.search(self.text, index)
            found = None
            if match is not None:
                raw = self.text[match.start() : match.end()]
                second = _SECOND_NUMBER_START_PATTERN.search(raw)
                found = (match.start(), raw[: second.start()] if second else raw)
            self._searches[index] = found
        return self._searches[index]

    def candidate(self, candidate: str, offset: int) -> Candidate:
        key = (candidate, offset)
        if key not in self._candidates:
            self._candidates[key] = _candidate(self.text, candidate, offset)
        return self._candidates[key]
