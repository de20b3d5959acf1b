"""Detectors on long texts: a search's time grows with its text, matches are found anywhere in it,
presidio's one quadratic pattern scans in linear time and finds what it finds, and the search for
hidden characters skips only characters that are never hidden."""

from __future__ import annotations

import random

import pytest
import regex

from benchmarks.long_text_bench import licence_text
from detectors.base import DetectorError
from detectors.patterns import RegexDetector
from detectors.pii import PiiDetector, recognizers
from detectors.pii.patterns import LOOKAHEADS, PatternRunner, digest
from detectors.specs import DetectorSettings, PiiParams, RegexParams
from detectors.textforms import BIDI_CONTROLS, TAG_FIRST, TAG_LAST, _hidden_class, is_invisible
from detectors.textscan import TIMEOUT_CHARS, search_timeout


def test_a_search_gets_the_timeout_for_each_50000_characters() -> None:
    assert search_timeout(0.05, "x" * 100) == 0.05
    assert search_timeout(0.05, "x" * TIMEOUT_CHARS) == 0.05
    assert search_timeout(0.05, "x" * 1_000_000) == pytest.approx(1.0)


def test_matches_anywhere_in_a_long_text_are_found() -> None:
    """Near each multiple of TIMEOUT_CHARS (where a scan in chunks would cut) and at both ends."""
    text = list(licence_text(999_000))
    starts = [0, TIMEOUT_CHARS - 3, 7 * TIMEOUT_CHARS - 1, 999_000 - 10]
    for start in starts:
        text[start : start + 10] = "XQ-1234-ZZ"
    detector = RegexDetector(RegexParams(pattern=r"XQ-\d{4}-ZZ"), DetectorSettings())
    assert [f.start for f in detector.detect("".join(text)).findings] == starts


def test_a_catastrophic_regex_on_a_long_text_still_times_out() -> None:
    detector = RegexDetector(RegexParams(pattern=r"(a+)+$"), DetectorSettings(regex_timeout_s=0.001))
    with pytest.raises(DetectorError, match=r"regex timed out after 0\.006s"):
        detector.detect("a" * 299_999 + "!")


def _pan_low() -> tuple[regex.Pattern[str], PatternRunner]:
    """presidio's PAN (Low) pattern as presidio compiles it, and the runner that scans it."""
    (recognizer,) = recognizers(["IN_PAN"])
    (source,) = [p for p in recognizer.patterns if digest(p.regex) in LOOKAHEADS]
    runner = PatternRunner(recognizer, 0)
    runner.patterns = [runner.patterns[recognizer.patterns.index(source)]]
    return regex.compile(source.regex, flags=recognizer.global_regex_flags), runner


TOKENS = ["ABCDE1234F", "abcde", "1234", "12", "x", " ", "\n", "@", "#", "-", "9999", "K", "\u212a"]
TOKENS += ["\u017f", "Zz", "\u00f6", "5", "a" * 10, "1" * 10, "AB12CD34EF", "_", "."]


@pytest.mark.parametrize("seed", [1, 2])
def test_pan_low_without_its_lookaheads_finds_what_presidios_pattern_finds(seed: int) -> None:
    plain, runner = _pan_low()
    (pattern,) = runner.patterns
    assert pattern.lasts  # the pattern is scanned without its lookaheads
    rng = random.Random(seed)
    for _ in range(3000):
        text = "".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 30)))
        assert [m.span() for m in pattern.matches(text, 5.0)] == [m.span() for m in plain.finditer(text)]


def test_pan_low_scans_a_long_text() -> None:
    """With its lookaheads, PAN (Low) takes seconds on this text: a timeout, so no result at all."""
    detector = PiiDetector(PiiParams(entities=["IN_PAN"], min_score=0.0), DetectorSettings())
    assert detector.detect(licence_text(300_000)).findings


def test_the_search_for_hidden_characters_finds_every_character_hidden_runs_may_report() -> None:
    points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]  # surrogates: not in a str
    hidden = {cp for cp in points if is_invisible(cp) or cp in BIDI_CONTROLS or TAG_FIRST <= cp <= TAG_LAST}
    assert {ord(c) for c in _hidden_class().findall("".join(map(chr, points)))} == hidden
