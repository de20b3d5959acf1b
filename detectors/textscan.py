"""Timed regex scanning shared by the regex-based detectors."""

from __future__ import annotations

from collections.abc import Iterator

import regex

from detectors.base import DetectorError

MAX_FINDINGS = 1000


def finditer_timed(pattern: regex.Pattern[str], text: str, timeout_s: float) -> Iterator[regex.Match[str]]:
    """Yield the matches of ``pattern`` in ``text``, each search limited to ``timeout_s``.

    The GIL is released while matching. A timeout raises DetectorError, so a scan cut
    short is never passed off as a clean result.
    """
    try:
        yield from pattern.finditer(text, concurrent=True, timeout=timeout_s)
    except TimeoutError as exc:
        raise DetectorError(f"regex timed out after {timeout_s:g}s") from exc
