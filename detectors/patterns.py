"""Regex and keyword detectors: user patterns and deny lists, matched under a timeout."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, islice

import regex

from detectors.base import EMPTY_RESULT, DetectorResult, Finding
from detectors.specs import DetectorSettings, KeywordsParams, RegexParams
from detectors.textscan import MAX_FINDINGS, Screen, finditer_timed, literal_screen, needle_screen


class _PatternDetector:
    """Reports each non-empty match of one compiled pattern, less the allowed values."""

    def __init__(
        self,
        pattern: regex.Pattern[str],
        finding_type: str,
        ignore_case: bool,
        allow: Iterable[str],
        settings: DetectorSettings,
        *,
        screen: Screen | None = None,
    ) -> None:
        self._pattern = pattern
        self._screen = screen  # False: the text cannot hold a match (detectors.textscan)
        self._type = finding_type
        self._ignore_case = ignore_case
        self._allow = frozenset(self._normalise(value) for value in allow)
        self._timeout_s = settings.regex_timeout_s

    def _normalise(self, value: str) -> str:
        return value.casefold() if self._ignore_case else value

    def _reported(self, match: regex.Match[str]) -> bool:
        return match.end() > match.start() and self._normalise(match[0]) not in self._allow

    def detect(self, text: str) -> DetectorResult:
        """Scan ``text``; raise DetectorError when the pattern times out."""
        if self._screen is not None and not self._screen(text):
            return EMPTY_RESULT
        scan = finditer_timed(self._pattern, text, self._timeout_s)
        first = next(scan, None)  # most texts hold no match: nothing more to build
        if first is None:
            return EMPTY_RESULT
        matches = filter(self._reported, chain((first,), scan))
        return DetectorResult(
            tuple(Finding(self._type, m.start(), m.end()) for m in islice(matches, MAX_FINDINGS))
        )


def _flags(ignore_case: bool) -> int:
    return regex.IGNORECASE if ignore_case else 0


class RegexDetector(_PatternDetector):
    """``regex(pattern: ...)``: every non-empty match of the pattern is a finding."""

    def __init__(self, params: RegexParams, settings: DetectorSettings) -> None:
        pattern = regex.compile(params.pattern, _flags(params.ignore_case))
        screen = literal_screen(params.pattern, params.ignore_case)
        super().__init__(pattern, params.type, params.ignore_case, params.allow, settings, screen=screen)


def keywords_pattern(words: Iterable[str], whole_word: bool) -> str:
    """One alternation of the escaped words, longest first so that longer phrases win."""
    alternation = "|".join(regex.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))
    # Lookarounds instead of \b, so that words that start or end with a symbol ("c++") work.
    return rf"(?<!\w)(?:{alternation})(?!\w)" if whole_word else f"(?:{alternation})"


class KeywordsDetector(_PatternDetector):
    """``keywords(words: [...])``: every occurrence of a listed word or phrase is a finding."""

    def __init__(self, params: KeywordsParams, settings: DetectorSettings) -> None:
        source = keywords_pattern(params.words, params.whole_word)
        pattern = regex.compile(source, _flags(params.ignore_case))
        # every match is one of the words: a text that holds none of them has no match
        screen = needle_screen(params.words, params.ignore_case)
        super().__init__(pattern, params.type, params.ignore_case, params.allow, settings, screen=screen)
