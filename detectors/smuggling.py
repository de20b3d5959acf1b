"""Smuggling detector: invisible characters, bidi controls and Unicode tag characters that hide text."""

from __future__ import annotations

from itertools import islice

from detectors.base import DetectorResult, Finding
from detectors.specs import DetectorSettings, SmugglingParams
from detectors.textforms import hidden_runs
from detectors.textscan import MAX_FINDINGS

MAX_DETAIL = 200  # characters of decoded hidden text kept in a finding


class SmugglingDetector:
    """``smuggling(types: [...])``: each run of hidden characters is a finding.

    A run of tag characters (the "ASCII smuggling" channel) carries the text it spells in the
    finding's ``detail``, as do variation selectors that carry readable bytes. That text is what an
    attacker hid for the model to read, not the user's data, so it is reported (cut at 200
    characters) for the people who review the decision.
    """

    def __init__(self, params: SmugglingParams, settings: DetectorSettings) -> None:
        self._types = frozenset(params.types)

    def detect(self, text: str) -> DetectorResult:
        if text.isascii():
            return DetectorResult()
        runs = (r for r in hidden_runs(text) if r.type in self._types)
        return DetectorResult(
            tuple(
                Finding(r.type, r.start, r.end, 1.0, _detail(r.decoded, text[r.start : r.end]))
                for r in islice(runs, MAX_FINDINGS)
            )
        )


def _detail(decoded: str, run: str) -> str:
    return decoded[:MAX_DETAIL] or _describe(run)


def _describe(run: str) -> str:
    """The code points of a run, e.g. "U+200B x3"."""
    names = sorted({f"U+{ord(c):04X}" for c in run})
    return " ".join(names[:8]) + (f" x{len(run)}" if len(run) > 1 else "")
