"""Recognizers with their own analyze(), called as AnalyzerEngine calls them (IBAN's only if it may match)."""

from __future__ import annotations

from typing import Any

import regex
from presidio_analyzer.predefined_recognizers import IbanRecognizer

from detectors.pii.findings import Raw
from detectors.pii.patterns import digest, timed_out
from detectors.textscan import run_timed

# IbanRecognizer.analyze finds nothing where its one pattern does not match, and every match of that
# pattern (the digest's) starts, after a lookbehind, with `[A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,6}`.
# The anchor asks for the same elements, with the recognizer's flags, so a text it is not found in
# cannot hold an IBAN; it finds the digits first, then looks behind them for the letters (a scan for
# digits is three times faster than one for letters).
_IBAN_DIGEST = "1f98697e78e08d67"
_IBAN_ANCHOR = "[0-9]{2}(?<=[A-Z]{2}[0-9]{2})(?:[ -]?[A-Z0-9]{4}){2}"


def _needs(recognizer: Any) -> regex.Pattern[str] | None:
    """What a text must contain for the recognizer's analyze() to find anything (None: unknown)."""
    iban: Any = recognizer if type(recognizer) is IbanRecognizer else None  # not a subclass
    patterns: list[Any] = list(iban.patterns or ()) if iban is not None else []
    if len(patterns) != 1 or digest(str(patterns[0].regex)) != _IBAN_DIGEST:
        return None
    return regex.compile(_IBAN_ANCHOR, flags=int(iban.global_regex_flags))


class AnalyzedRunner:
    """A recognizer with its own analyze(): called as AnalyzerEngine calls it (unless it cannot find
    anything in the text)."""

    def __init__(self, recognizer: Any, index: int) -> None:
        self.recognizer = recognizer
        self.index = index
        self.needs = _needs(recognizer)

    def run(self, text: str, timeout_s: float) -> list[Raw]:
        if self.needs is not None and not self._may_find(self.needs, text, timeout_s):
            return []
        results = self.recognizer.analyze(text, self.recognizer.supported_entities, None)
        return [Raw(r.entity_type, r.start, r.end, r.score, self.index) for r in results or ()]

    @staticmethod
    def _may_find(needs: regex.Pattern[str], text: str, timeout_s: float) -> bool:
        try:
            return (
                run_timed(lambda c, t: needs.search(text, concurrent=c, timeout=t), text, timeout_s)
                is not None
            )
        except TimeoutError as exc:
            raise timed_out(exc) from exc
