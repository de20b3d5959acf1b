"""The runtime contract every detector implements: findings in, results out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a detector found: its type, character span in the scanned text, and score.

    A finding never carries the matched text itself (it may be a secret or PII);
    ``detail`` holds safe extra facts only (for example a rule name).
    """

    type: str
    start: int
    end: int
    score: float = 1.0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DetectorResult:
    """What one detector call returns."""

    findings: tuple[Finding, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.findings)

    @property
    def score(self) -> float:
        return max((f.score for f in self.findings), default=0.0)

    @property
    def types(self) -> frozenset[str]:
        return frozenset(f.type for f in self.findings)


EMPTY_RESULT = DetectorResult()


class DetectorError(Exception):
    """A detector could not produce a result (bad input, timeout, model failure)."""


class Detector(Protocol):
    """A configured detector instance: stateless per call, safe to share across threads."""

    def detect(self, text: str) -> DetectorResult:
        """Scan ``text``; raise DetectorError when no trustworthy result can be given."""
        ...
