"""Findings while they are scored (Raw), and presidio's duplicate removal over them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Raw:
    """A finding while it is being scored: presidio's RecognizerResult without the explanation."""

    type: str
    start: int
    end: int
    score: float
    recognizer: int  # index into the detector's recognizers


def remove_duplicates(found: list[Raw]) -> list[Raw]:
    """Drop zero scores, exact duplicates, and findings inside a same-type one with an equal or higher one
    (presidio's EntityRecognizer.remove_duplicates)."""
    unique = {(r.type, r.start, r.end, r.score): r for r in found if r.score != 0}
    ordered = sorted(unique.values(), key=lambda r: (r.type, r.start, r.start - r.end, -r.score))
    kept: list[Raw] = []
    active: list[Raw] = []
    for r in ordered:
        if active and active[0].type != r.type:
            active = []
        active = [a for a in active if a.end >= r.start]
        if not any(r.start >= a.start and r.end <= a.end and r.score <= a.score for a in active):
            kept.append(r)
            active.append(r)
    return kept
