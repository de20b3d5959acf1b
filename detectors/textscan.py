"""Timed regex scanning shared by the regex-based detectors, and screens that rule a pattern out first."""

from __future__ import annotations

import string
import time
from collections.abc import Callable, Collection, Iterator
from typing import TypeVar

import regex

from detectors.base import DEADLINE, DeadlineExceeded, DetectorError

MAX_FINDINGS = 1000
# A search's timeout guards against catastrophic backtracking, whose time grows faster than the
# text; a search that reads the text once takes time in proportion to it. So a search gets the
# configured timeout for each TIMEOUT_CHARS characters of its text (all of it for a shorter text):
# at the default 50 ms, 1 s for 1,000,000 characters, several times what the slowest shipped
# pattern needs (benchmarks/LONG_TEXT.md). A pattern that needs more is superlinear on that text.
TIMEOUT_CHARS = 50_000
# The regex module can release the interpreter lock (GIL) while it matches. On a short text a match
# takes microseconds, and taking the lock back can then cost a whole time slice of another busy
# thread (measured in the server: a 1 us search took 14 us). So a search on a short text first runs
# holding the lock, for at most _HELD_S; one that takes longer (a pathological pattern) runs again
# releasing it, so that it cannot stall the other threads for the whole of its timeout.
_LONG_TEXT_CHARS = 4096
_HELD_S = 0.001
T = TypeVar("T")


def search_timeout(timeout_s: float, text: str) -> float:
    """The time a search of ``text`` may take: ``timeout_s`` per TIMEOUT_CHARS characters, at least
    ``timeout_s``."""
    return timeout_s * max(1.0, len(text) / TIMEOUT_CHARS)


def run_timed(search: Callable[[bool, float], T], text: str, timeout_s: float) -> T:
    """``search(concurrent, left_s)`` on ``text`` within ``search_timeout(timeout_s, text)``, or the
    time left to the request's deadline (detectors.base.DEADLINE) if that is less: first holding the
    GIL for at most 1 ms if the text is short, then releasing it for the rest.

    Raises TimeoutError, saying "timed out after" the time the search had; DeadlineExceeded when the
    deadline cut it short (or had passed before it began).
    """
    budget_s = search_timeout(timeout_s, text)
    deadline, cut = DEADLINE.get(), False
    if deadline is not None and (until_s := deadline - time.perf_counter()) < budget_s:
        if until_s <= 0:
            raise DeadlineExceeded("the deadline passed before a regex search")
        budget_s, cut = until_s, True
    left_s = budget_s
    if len(text) <= _LONG_TEXT_CHARS and budget_s > _HELD_S:
        try:
            return search(False, _HELD_S)
        except TimeoutError:
            left_s -= _HELD_S
    try:
        return search(True, left_s)
    except TimeoutError as exc:
        if cut:
            raise DeadlineExceeded(f"the deadline cut a regex search short after {budget_s:.3g}s") from exc
        raise TimeoutError(f"timed out after {budget_s:g}s") from exc


def finditer_timed(pattern: regex.Pattern[str], text: str, timeout_s: float) -> Iterator[regex.Match[str]]:
    """The matches of ``pattern`` in ``text``, all found in the time ``run_timed`` gives.

    A timeout raises DetectorError, so a scan cut short is never passed off as a clean result.
    """

    # finditer(string, pos, endpos, overlapped, concurrent, partial, timeout), as regex.finditer
    # calls it: positional arguments are cheaper than keywords
    def scan(concurrent: bool, left_s: float) -> list[regex.Match[str]]:
        return list(pattern.finditer(text, None, None, False, concurrent, False, left_s))

    try:
        return iter(run_timed(scan, text, timeout_s))
    except TimeoutError as exc:
        raise DetectorError(f"regex {exc}") from exc


# Screens: a substring test that rules a pattern out before the regex engine runs.
#
# A screen returns False only when no match is possible: the text holds none of the literals that
# every match of the pattern contains. It is exact, never a guess. Case-insensitive patterns are
# screened on ASCII text with ASCII literals only: the regex module also matches "k" to the Kelvin
# sign (U+212A), "i" to U+0130, "s" to the long s (U+017F), which a lowercased substring test misses.

Screen = Callable[[str], bool]

MAX_NEEDLES = 16  # a substring test per needle: more than this, and the regex is run as it is


def needle_screen(needles: Collection[str], ignore_case: bool) -> Screen | None:
    """A screen for a pattern each of whose matches contains one of ``needles``; None when it has none."""
    words = tuple(sorted(set(needles)))
    if not words or len(words) > MAX_NEEDLES or not all(words):
        return None
    if not ignore_case:
        if len(words) == 1:
            (word,) = words
            return lambda text: word in text
        return lambda text: any(map(text.__contains__, words))
    if not all(w.isascii() for w in words):
        return None
    lowered = tuple(sorted({w.lower() for w in words}))
    if len(lowered) == 1:
        (low,) = lowered
        return lambda text: not text.isascii() or low in text.lower()
    return lambda text: not text.isascii() or any(map(text.lower().__contains__, lowered))


def literal_screen(pattern: str, ignore_case: bool = False) -> Screen | None:
    """A screen for a regex pattern (compiled with IGNORECASE if ``ignore_case``, else no flags), from
    the literals every match contains.

    None when the pattern needs no literal, or uses syntax outside the subset that _Literals reads.
    """
    found = required_literals(pattern)
    return None if found is None else needle_screen(found[0], found[1] or ignore_case)


_FLAGS = regex.compile(r"\(\?([ims]+)\)")  # leading global flags that leave literals as they are
_COUNT = regex.compile(r"\{(\d*)(?:,\d*)?\}")  # {m}, {m,}, {m,n}, {,n}; not fuzzy constraints
_OPAQUE_ESCAPES = frozenset("AZbBdDsSwWntrf")  # a class, an anchor or a control character
_LITERAL_ESCAPES = frozenset(string.punctuation + " ")  # the character itself
_SPECIAL = frozenset(".^$*+?{}[]()|\\")


class _Unsupported(Exception):
    """Syntax that _Literals does not read: the pattern gets no screen."""


def required_literals(pattern: str) -> tuple[frozenset[str], bool] | None:
    """Literals one of which occurs in every match of ``pattern``, and whether case is ignored.

    It reads a subset of the regex module's (version 0) syntax: literal characters, escapes,
    classes, ``.``, anchors, capturing and ``(?:...)`` groups, alternation, quantifiers, and leading
    ``(?i)``, ``(?m)``, ``(?s)``. Anything else (lookarounds, other flags, backreferences, fuzzy
    matching, POSIX classes) gives None.
    """
    flags = _FLAGS.match(pattern)
    ignore_case = flags is not None and "i" in flags[1]
    parser = _Literals(pattern, flags.end() if flags else 0, ignore_case)
    try:
        needles = parser.alternation()
    except (_Unsupported, RecursionError):
        return None
    if parser.i != len(pattern) or needles is None or not parser.usable(needles):
        return None  # an unmatched ")", or nothing needed
    return needles, ignore_case


class _Literals:
    """Recursive descent over a pattern: the needles that a branch, group or sequence requires."""

    def __init__(self, pattern: str, start: int, ignore_case: bool) -> None:
        self.p, self.i, self.ignore_case = pattern, start, ignore_case

    def peek(self) -> str:
        return self.p[self.i : self.i + 1]

    def usable(self, needles: frozenset[str]) -> bool:
        return len(needles) <= MAX_NEEDLES and (not self.ignore_case or all(n.isascii() for n in needles))

    def alternation(self) -> frozenset[str] | None:
        """Branches up to ")" or the end: every match holds a needle of its branch, if each has some."""
        branches = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence())
        if any(b is None for b in branches):
            return None
        return frozenset().union(*(b for b in branches if b is not None))

    def sequence(self) -> frozenset[str] | None:
        """Items up to "|", ")" or the end: the best needle set that one of them requires."""
        found: list[frozenset[str]] = []
        run = ""  # consecutive literal characters, each matched exactly once
        while self.peek() not in ("", "|", ")"):
            needles, char = self.atom()
            least = self.quantifier()
            if char and least is None:
                run += char
                continue
            if run:
                found.append(frozenset([run]))
                run = ""
            if needles is not None and least != 0:
                found.append(needles)
        if run:
            found.append(frozenset([run]))
        usable = [f for f in found if self.usable(f)]
        return max(usable, key=_score) if usable else None

    def atom(self) -> tuple[frozenset[str] | None, str]:
        """One item: (the needles a group requires, or None; the literal character, or "")."""
        char = self.peek()
        self.i += 1
        if char == "(":
            if self.peek() == "?":
                if not self.p.startswith("?:", self.i):
                    raise _Unsupported  # lookarounds, named and atomic groups, flags, conditionals
                self.i += 2
            needles = self.alternation()
            if self.peek() != ")":
                raise _Unsupported
            self.i += 1
            return needles, ""
        if char == "[":
            self.skip_class()
            return None, ""
        if char == "\\":
            escaped = self.peek()
            self.i += 1
            if escaped in _OPAQUE_ESCAPES:
                return None, ""
            if escaped in _LITERAL_ESCAPES:
                return None, escaped
            raise _Unsupported  # \x41, \p{L}, backreferences, named lists, ...
        if char in (".", "^", "$"):
            return None, ""
        if char in _SPECIAL:
            raise _Unsupported  # a quantifier with nothing to repeat, a stray "]" or "}"
        return None, char

    def quantifier(self) -> int | None:
        """The least number of repeats of the quantifier that follows, or None when there is none."""
        char = self.peek()
        if char in ("?", "*", "+"):
            self.i += 1
            least = 1 if char == "+" else 0
        elif char == "{":
            count = _COUNT.match(self.p, self.i)
            if count is None:
                raise _Unsupported  # fuzzy matching, or a brace that is not a count
            self.i = count.end()
            least = int(count[1] or 0)
        else:
            return None
        if self.peek() in ("?", "+"):  # lazy or possessive
            self.i += 1
        if self.peek() in ("?", "*", "+", "{"):
            raise _Unsupported
        return least

    def skip_class(self) -> None:
        """Past the "]" of a class (``[^]a-z]``: a "]" first is a member)."""
        i = self.i + (self.p.startswith("^", self.i))
        i += self.p.startswith("]", i)
        while i < len(self.p):
            char = self.p[i]
            if char == "\\":
                i += 2
                continue
            if char == "[":
                raise _Unsupported  # POSIX classes, nested sets
            if char == "]":
                self.i = i + 1
                return
            i += 1
        raise _Unsupported


def _score(needles: frozenset[str]) -> tuple[int, int, int]:
    """Needles of three characters or more, then fewer of them (a substring test each), then longer."""
    shortest = min(len(n) for n in needles)
    return min(shortest, 3), -len(needles), shortest
