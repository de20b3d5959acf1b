"""Screens (detectors.textscan): a substring test that says False only when the regex cannot match.

The claim under test: whenever a screen returns False for a text, the ``regex`` module finds no match
of the pattern in it, under the pattern's flags and the module's IGNORECASE quirks (the Kelvin sign
U+212A matches "k", U+0130 matches "i", U+0131 matches "I", the long s U+017F matches "s").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import regex
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from detectors.patterns import KeywordsDetector, RegexDetector, keywords_pattern
from detectors.specs import DetectorSettings, KeywordsParams, RegexParams
from detectors.textscan import MAX_NEEDLES, literal_screen, needle_screen, required_literals
from dsl.compiler import compile_source
from dsl.types import Outcome
from engine.runtime.decision import Decision
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import request_from_dict

SETTINGS = DetectorSettings()

KELVIN = "\u212a"  # matches k and K under IGNORECASE
DOTTED_I = "\u0130"  # matches i and I
DOTLESS_I = "\u0131"  # matches I (not i)
LONG_S = "\u017f"  # matches s and S
FOLDING = (KELVIN, DOTTED_I, DOTLESS_I, LONG_S)


def needles_in(needles: frozenset[str], ignore_case: bool, text: str) -> bool:
    """Whether ``text`` holds one of ``needles``, compared as the screen compares them on ASCII text."""
    if ignore_case:
        return any(n.lower() in text.lower() for n in needles)
    return any(n in text for n in needles)


# Table: patterns, the literals every match must contain, and texts on either side.


@dataclass(frozen=True)
class Case:
    pattern: str
    literals: frozenset[str] | None  # required_literals(pattern)[0]; None: no screen
    hits: tuple[str, ...] = ()  # the regex matches: the screen must let them through
    ruled_out: tuple[str, ...] = ()  # no match, and no required literal: the screen says False
    kept: tuple[str, ...] = ()  # no match, but the screen cannot tell: it says True


def lits(*needles: str) -> frozenset[str]:
    return frozenset(needles)


CASES = [
    # literal runs
    Case("hello", lits("hello"), ("hello", "say hello!"), ("", "HELLO", "help", "hel lo")),
    Case("café", lits("café"), ("un café",), ("cafe", "CAFÉ", "cafe\u0301")),
    Case("a\\.b", lits("a.b"), ("a.b",), ("axb", "a\\.b", "ab")),
    Case("foo\\|bar", lits("foo|bar"), ("foo|bar",), ("foo", "bar", "foobar")),
    Case("\\\\server", lits("\\server"), ("\\\\server\\share",), ("/server", "server")),
    Case("^admin$", lits("admin"), ("admin",), ("root",), ("admin\nx", " admin")),
    Case("\\bword\\b", lits("word"), ("a word.",), ("wor d", "WORD"), ("words", "sword")),
    Case("(?m)^error: .*$", lits("error: "), ("x\nerror: disk",), ("error:", "Error: x"), (" error: x",)),
    # alternation
    Case("foo|bar", lits("foo", "bar"), ("foo", "xbarx"), ("fo", "ba", "FOO")),
    Case("(foo|bar)baz", lits("baz"), ("foobaz", "barbaz"), ("foo bar", "fooba"), ("baz", "quxbaz")),
    Case("(?:ab|cd)+ef?", lits("ab", "cd"), ("abe", "cdcdef"), ("ef", "a b c d"), ("ab", "cd e")),
    # optional parts give no literal: a screen that required them would drop "color" or "bar"
    Case("colou?r", lits("colo"), ("color", "colour"), ("colr", "COLOR"), ("colouur",)),
    Case("(foo)?bar", lits("bar"), ("bar", "foobar"), ("foo", "ba r")),
    Case("(ab){0,2}cd", lits("cd"), ("cd", "ababcd"), ("abab", "c d")),
    Case("(ab){,2}cd", lits("cd"), ("cd", "abcd"), ("abab",)),
    Case("abcd??ef", lits("abc"), ("abcef", "abcdef"), ("abef", "bcdef"), ("abcxef",)),
    Case("abc*+d", lits("ab"), ("abd", "abcccd"), ("acd", "bcd"), ("abx",)),
    Case("(|x)yz", lits("yz"), ("yz", "xyz"), ("xy", "y z")),
    Case("(?:(?:abc|abd)?|q)z", lits("z"), ("z", "abdz"), ("abc", "abd", "q")),
    # quantifiers that keep a literal: {m} with m > 0, +
    Case("x*yz", lits("yz"), ("yz", "xxyz"), ("xy", "x y")),
    Case("x+yz", lits("yz"), ("xyz", "xxyz"), ("xy",), ("yz",)),
    Case("x{2}yz", lits("yz"), ("xxyz",), ("xx", "x"), ("xyz",)),
    Case("(abc)+d", lits("abc"), ("abcd", "abcabcd"), ("ab cd", "d"), ("abc",)),
    Case("(ab){2}c", lits("ab"), ("ababc",), ("a bc", "c"), ("abc",)),
    Case("(bc)*(de){1,3}fg?", lits("de"), ("def", "bcdedefg"), ("bcf", "d ef"), ("de",)),
    # classes, escapes and "." break a run of literals
    Case("\\d{3}-\\d{4}", lits("-"), ("555-1234",), ("5551234", "555 1234"), ("55-1234",)),
    Case("[0-9]+-[a-z]+\\.com", lits(".com"), ("7-ab.com",), ("7-ab.org", "x.co m"), ("-.com",)),
    Case("a\\d+b\\s*cde", lits("cde"), ("a1bcde", "a22b \tcde"), ("a1b cd", "ab"), ("abcde",)),
    Case("[]x]abc", lits("abc"), ("]abc", "xabc"), ("ab", "]ab c"), ("yabc",)),
    Case("[^]x]abc", lits("abc"), ("yabc",), ("ab",), ("]abc", "abc")),
    Case("(?s)abc.de", lits("abc"), ("abc\nde", "abcxde"), ("ab", "de"), ("abcde",)),
    # case-insensitive: ASCII needles, compared in lower case on ASCII text; non-ASCII text always passes
    Case(
        "(?i)secret", lits("secret"), ("SeCrEt", "top SECRET", LONG_S + "ecret", "\u017fECRET"), ("secre t",)
    ),
    Case("(?i)kelvin", lits("kelvin"), ("KELVIN", KELVIN + "elvin", KELVIN + "ELVIN"), ("kelvi", "k elvin")),
    Case("(?i)if", lits("if"), ("IF", "iF", DOTTED_I + "f", DOTTED_I + "F"), ("i f", "fi")),
    Case("(?i)ki", lits("ki"), (KELVIN + DOTTED_I, "kI", KELVIN + "i"), ("k i", "ik")),
    Case("(?i)stop|halt", lits("stop", "halt"), ("STOP", "Halt", "\u017ftop"), ("st op", "hal")),
    Case("(?i)(?:k|s)ey", lits("ey"), ("KEY", "sey", KELVIN + "ey", LONG_S + "EY"), ("e y", "ye"), ("hey",)),
    Case("(?is)token=\\w+", lits("token="), ("TOKEN=abc", "toKen=x", "to" + KELVIN + "en=1"), ("token",)),
    Case("(?mi)^dear \\w+,", lits("dear "), ("DEAR bob,", "x\ndear " + KELVIN + ","), ("dea r",)),
    # no literal every match needs
    Case("ab|c?", None, ("", "ab", "c")),
    Case("a?", None, ("", "b")),
    Case("[abc]+", None, ("a", "cab")),
    Case("(ab)?(cd)*", None, ("", "x")),
    # non-ASCII literals under (?i): the screen would lower-case them, so there is none
    Case("(?i)café", None, ("CAFÉ", "Café")),
    Case("(?i)" + KELVIN + "elvin", None, ("kelvin", "KELVIN", KELVIN + "elvin")),
    Case("(?i)" + LONG_S + "ecret", None, ("secret", "SECRET")),
    # syntax the parser does not read: lookarounds, backreferences, properties, other flags, fuzzy
    Case("(?=foo)foo", None, ("foo",)),
    Case("(?<!x)foo", None, ("foo",)),
    Case("foo(?!bar)", None, ("foo",)),
    Case("(a)\\1", None, ("aa",)),
    Case("(?P<n>foo)(?P=n)", None, ("foofoo",)),
    Case("\\p{L}+foo", None, ("xfoo",)),
    Case("\\x41bc", None, ("Abc",)),
    Case("\\N{LATIN SMALL LETTER A}bc", None, ("abc",)),
    Case("(?x)foo bar", None, ("foobar",)),
    Case("(?a)foo", None, ("foo",)),
    Case("(?fi)stra\\u00dfe", None, ("STRASSE",)),
    Case("(?V1)foo", None, ("foo",)),
    Case("foo(?i)bar", None, ("fooBAR",)),  # the flag holds from there on
    Case("(?i:foo)bar", None, ("FOObar",)),
    Case("(?-i)foo", None, ("foo",)),
    Case("(?>foo)", None, ("foo",)),
    Case("(?#note)foo", None, ("foo",)),
    Case("(?:foo){e<=1}", None, ("fxo",)),
    Case("[[:alpha:]]foo", None, ("xfoo",)),
    Case("(*FAIL)|foo", None, ("foo",)),
    # more needles than a screen tests
    Case("|".join(f"w{n:02d}" for n in range(MAX_NEEDLES + 1)), None, ("w16",)),
]


def test_every_table_pattern_compiles_and_is_listed_once() -> None:
    patterns = [case.pattern for case in CASES]
    assert len(patterns) == len(set(patterns))
    for pattern in patterns:
        regex.compile(pattern)


@pytest.mark.parametrize("case", CASES, ids=[repr(c.pattern)[:40] for c in CASES])
def test_required_literals_and_the_screen_agree_with_the_regex(case: Case) -> None:
    compiled = regex.compile(case.pattern)
    found = required_literals(case.pattern)
    screen = literal_screen(case.pattern)
    if case.literals is None:
        assert found is None or screen is None
        assert screen is None
    else:
        assert found is not None
        needles, ignore_case = found
        assert needles == case.literals
        assert ignore_case == bool(compiled.flags & regex.IGNORECASE)
        assert screen is not None
    for text in case.hits:
        assert compiled.search(text) is not None, text
        assert screen is None or screen(text), text
    for text in case.ruled_out:
        assert compiled.search(text) is None, text
        assert screen is not None and not screen(text), text
    for text in case.kept:
        assert compiled.search(text) is None, text
        assert screen is not None and screen(text), text


def test_a_case_insensitive_screen_lets_every_non_ascii_text_through() -> None:
    screen = literal_screen("(?i)secret")
    assert screen is not None
    assert not screen("public")
    for text in ("sécret", "public é", LONG_S, *FOLDING):
        assert regex.search("(?i)secret", text) is None
        assert screen(text)


def test_a_case_sensitive_screen_is_an_exact_substring_test() -> None:
    screen = literal_screen("kelvin")
    assert screen is not None
    assert screen("kelvin") and not screen("KELVIN") and not screen(KELVIN + "elvin")
    assert regex.search("kelvin", KELVIN + "elvin") is None


def test_the_folding_quirks_the_screens_allow_for() -> None:
    # the regex module's IGNORECASE quirks: a lowered substring test would miss all of these
    assert regex.search("(?i)k", KELVIN) is not None
    assert regex.search("(?i)i", DOTTED_I) is not None
    assert regex.search("(?i)I", DOTLESS_I) is not None
    assert regex.search("(?i)s", LONG_S) is not None
    for char in FOLDING:
        assert not char.isascii()


# Property: patterns from a small grammar, texts from their own pieces with case variants.

Piece = tuple[str, st.SearchStrategy[str]]  # regex source, and texts that (mostly) match it

LITERALS: list[tuple[str, str]] = [
    *((c, c) for c in "abkisKIS-,= "),
    ("\\.", "."),
    ("\\-", "-"),
    ("\\\\", "\\"),
    ("\\ ", " "),
    ("\\{", "{"),
    ("\\|", "|"),
    ("é", "é"),
    (KELVIN, KELVIN),
    (DOTTED_I, DOTTED_I),
    (DOTLESS_I, DOTLESS_I),
    (LONG_S, LONG_S),
]
CLASSES: list[tuple[str, str]] = [
    ("[ab]", "ab"),
    ("[^a]", "bk."),
    ("[]a]", "]a"),
    ("[\\]k]", "]k"),
    ("[k-s]", "kis"),
    ("\\d", "19"),
    ("\\w", "k_9"),
    ("\\s", " \n"),
    (".", "ks."),
]
ANCHORS = ["^", "$", "\\b", "\\B", "\\A", "\\Z"]
QUANTIFIERS: list[tuple[str, int, int]] = [
    ("?", 0, 1),
    ("*", 0, 3),
    ("+", 1, 3),
    ("{0,2}", 0, 2),
    ("{,2}", 0, 2),
    ("{1}", 1, 1),
    ("{2}", 2, 2),
    ("{1,}", 1, 3),
    ("??", 0, 1),
    ("*?", 0, 2),
    ("+?", 1, 2),
    ("?+", 0, 1),
    ("{2,3}", 2, 3),
]
FLAGS = ["", "", "(?i)", "(?s)", "(?m)", "(?mi)", "(?is)"]


def case_variants(char: str) -> str:
    """``char``, its other case, and the non-ASCII characters that IGNORECASE folds onto it."""
    variants = {char, char.lower(), char.upper()}
    folds = {"k": KELVIN, "i": DOTTED_I + DOTLESS_I, "s": LONG_S}
    variants.update(folds.get(char.lower(), ""))
    if char in FOLDING:
        variants.update({KELVIN: "kK", DOTTED_I: "iI", DOTLESS_I: "iI", LONG_S: "sS"}[char])
    return "".join(sorted(v for v in variants if len(v) == 1))


ALPHABET = "".join(sorted({v for _, c in LITERALS for ch in c for v in case_variants(ch)} | set("xy9.\n")))


def literal_piece(source: str, char: str) -> Piece:
    return source, st.just(char)


def class_piece(source: str, members: str) -> Piece:
    return source, st.sampled_from(members)


@st.composite
def atoms(draw: st.DrawFn, depth: int) -> Piece:
    kind = draw(st.sampled_from(["literal"] * 6 + ["class", "class", "anchor"] + ["group"] * (depth < 2)))
    if kind == "literal":
        return literal_piece(*draw(st.sampled_from(LITERALS)))
    if kind == "class":
        return class_piece(*draw(st.sampled_from(CLASSES)))
    if kind == "anchor":
        return draw(st.sampled_from(ANCHORS)), st.just("")
    branches = draw(st.lists(sequences(depth + 1), min_size=1, max_size=3))
    opening = draw(st.sampled_from(["(", "(?:"]))
    source = opening + "|".join(s for s, _ in branches) + ")"
    return source, st.one_of(*(texts for _, texts in branches))


@st.composite
def items(draw: st.DrawFn, depth: int) -> Piece:
    source, texts = draw(atoms(depth))
    if source in ANCHORS or not draw(st.booleans()):
        return source, texts
    quantifier, least, most = draw(st.sampled_from(QUANTIFIERS))
    repeated = st.lists(texts, min_size=least, max_size=most).map("".join)
    return source + quantifier, repeated


@st.composite
def sequences(draw: st.DrawFn, depth: int = 0) -> Piece:
    parts = draw(st.lists(items(depth), min_size=1 if depth == 0 else 0, max_size=4))
    source = "".join(s for s, _ in parts)
    return source, st.tuples(*(texts for _, texts in parts)).map("".join)


@st.composite
def patterns(draw: st.DrawFn) -> Piece:
    branches = draw(st.lists(sequences(), min_size=1, max_size=2))
    source = draw(st.sampled_from(FLAGS)) + "|".join(s for s, _ in branches)
    return source, st.one_of(*(texts for _, texts in branches))


@st.composite
def mutated(draw: st.DrawFn, sample: str) -> str:
    """``sample`` with some characters swapped for a case variant, between a little filler."""
    chars = [draw(st.sampled_from(case_variants(c))) if c.strip() else c for c in sample]
    filler = st.text(alphabet=ALPHABET, max_size=3)
    return draw(filler) + "".join(chars) + draw(filler)


PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@PROPERTY
@given(pattern=patterns(), data=st.data())
def test_a_screen_that_says_false_means_no_match(pattern: Piece, data: st.DataObject) -> None:
    source, samples = pattern
    compiled = regex.compile(source)
    screen = literal_screen(source)
    found = required_literals(source)
    assert (screen is None) == (found is None or needle_screen(*found) is None)
    event("screened" if screen is not None else "no screen")
    if screen is None or found is None:
        return
    needles, ignore_case = found
    assert ignore_case == bool(compiled.flags & regex.IGNORECASE)
    texts = [
        data.draw(samples),
        data.draw(mutated(data.draw(samples))),
        data.draw(st.text(ALPHABET, max_size=6)),
    ]
    for text in texts:
        match = compiled.search(text)
        event(f"screen {screen(text)}, match {match is not None}, ignore_case {ignore_case}")
        if not screen(text):
            assert match is None, (source, text)
        elif match is not None and (not ignore_case or text.isascii()):
            # stronger: the needle lies within the match itself, not just somewhere in the text
            assert needles_in(needles, ignore_case, match[0]), (source, text, match[0])
        if not ignore_case or text.isascii():
            assert screen(text) == needles_in(needles, ignore_case, text)
        else:
            assert screen(text)


# needle_screen and the keywords detector


def keywords(**params: Any) -> KeywordsDetector:
    return KeywordsDetector(KeywordsParams.model_validate(params), SETTINGS)


SEVENTEEN = [f"word{n:02d}" for n in range(MAX_NEEDLES + 1)]

WORD_LISTS: list[tuple[list[str], bool, bool]] = [  # words, ignore_case, whether there is a screen
    (["secret"], True, True),
    (["secret"], False, True),
    (["Secret", "SECRET", "secret"], True, True),
    (["Secret", "SECRET", "secret"], False, True),
    (["kelvin", "skip", "this"], True, True),
    (["c++", "a.b", "x|y"], True, True),
    (["two words", "tab\there"], False, True),
    (["café"], False, True),
    (["café"], True, False),  # non-ASCII under ignore_case: no screen
    (["ok", "naïve"], True, False),
    ([KELVIN + "elvin"], False, True),
    ([KELVIN + "elvin"], True, False),
    (SEVENTEEN, False, False),  # more than MAX_NEEDLES words
    (SEVENTEEN, True, False),
    (SEVENTEEN[:MAX_NEEDLES], True, True),
    (SEVENTEEN[:MAX_NEEDLES] + SEVENTEEN[:3], False, True),  # duplicates count once
]

KEYWORD_TEXTS = [
    "",
    "nothing to see",
    "a secret here",
    "A SECRET HERE",
    "a Secret",
    LONG_S + "ecret",
    "SE" + "\u017f" + "RET",
    "secre t",
    "KELVIN",
    KELVIN + "elvin",
    "kelvin",
    "SKIP it",
    LONG_S + "kip it",
    "T" + DOTTED_I + "S",
    "th" + DOTTED_I + "s",
    "th" + DOTLESS_I + "s",
    "c++ and a.b",
    "C++",
    "x|y",
    "two words",
    "two  words",
    "tab\there",
    "café",
    "CAFÉ",
    "cafe",
    "naïve",
    "NAÏVE",
    "ok",
    "word00",
    "WORD16",
    "word16",
    "swordsword07s",
]


@pytest.mark.parametrize(("words", "ignore_case", "screened"), WORD_LISTS)
def test_needle_screen_agrees_with_the_keywords_detector(
    words: list[str], ignore_case: bool, screened: bool
) -> None:
    screen = needle_screen(words, ignore_case)
    assert (screen is not None) == screened
    flags = regex.IGNORECASE if ignore_case else 0
    unbounded = regex.compile(keywords_pattern(words, whole_word=False), flags)
    for whole_word in (True, False):
        detector = keywords(words=words, ignore_case=ignore_case, whole_word=whole_word)
        bare = regex.compile(keywords_pattern(words, whole_word), flags)
        for text in KEYWORD_TEXTS:
            found = detector.detect(text).found
            expected = any(m.end() > m.start() for m in bare.finditer(text))
            assert found == expected, (text, whole_word)
            if screen is not None and not screen(text):
                assert not found and unbounded.search(text) is None, text
    if screen is None:
        return
    for text in KEYWORD_TEXTS:
        if ignore_case and not text.isascii():
            assert screen(text), text
        else:
            assert screen(text) == needles_in(frozenset(words), ignore_case, text), text


def test_needle_screen_values() -> None:
    assert needle_screen([], False) is None
    assert needle_screen([""], False) is None
    assert needle_screen(["a", ""], True) is None
    sensitive = needle_screen(["Secret"], False)
    assert sensitive is not None
    assert sensitive("a Secret") and not sensitive("a secret") and not sensitive("SECRET")
    insensitive = needle_screen(["Secret", "TOKEN"], True)
    assert insensitive is not None
    assert insensitive("a sEcReT") and insensitive("token") and not insensitive("nothing")
    assert insensitive(KELVIN) and insensitive("é")  # non-ASCII text: the regex decides
    assert needle_screen(SEVENTEEN, False) is None
    assert needle_screen(SEVENTEEN[:MAX_NEEDLES], False) is not None


def test_keywords_detector_finds_folded_and_non_ascii_words() -> None:
    text = f"the {KELVIN}elvin scale, a {LONG_S}ecret, T{DOTTED_I}S"
    result = keywords(words=["kelvin", "secret", "tis"]).detect(text)
    assert [text[f.start : f.end] for f in result.findings] == [
        f"{KELVIN}elvin",
        f"{LONG_S}ecret",
        f"T{DOTTED_I}S",
    ]
    assert not keywords(words=["kelvin"], ignore_case=False).detect(f"{KELVIN}elvin").found
    assert keywords(words=["café"]).detect("UN CAFÉ").found
    assert not keywords(words=["café"]).detect("un cafe").found
    many = keywords(words=SEVENTEEN).detect("x WORD16 y")
    assert len(many.findings) == 1
    assert not keywords(words=SEVENTEEN).detect("word17 words").found


# `matches` rules in a ruleset: the engine screens the pattern the same way


MATCH_RULES = """\
ruleset t version "1" {
  rule colour on input { when content matches "colou?r" then block "colour" }
  rule optional on input { when content matches "(foo)?bar" then block "bar" }
  rule secret on input { when content matches "(?i)secret" then block "secret" }
  rule kelvin on input { when content matches "(?i)(?:k|s)ey" then block "key" }
  rule ahead on input { when content matches "(?=zz)zz" then block "ahead" }
  rule words on input { when content matches "(?i)\\\\bstop\\\\b|halt" then block "stop" }
}
"""


def evaluate(source: str, text: str) -> Decision:
    evaluator = Evaluator(compile_source(source), SETTINGS)
    return evaluator.evaluate(request_from_dict({"stage": "input", "text": text}))


@pytest.mark.parametrize(
    ("text", "rules"),
    [
        ("nothing", []),
        ("color", ["colour"]),
        ("colour", ["colour"]),
        ("COLOR", []),
        ("bar", ["optional"]),
        ("foo", []),
        ("top SECRET", ["secret"]),
        (f"{LONG_S}ecret", ["secret"]),
        ("sécret", []),
        (f"{KELVIN}EY", ["kelvin"]),
        (f"{LONG_S}ey", ["kelvin"]),
        ("hey", []),
        ("zz", ["ahead"]),
        ("STOP", ["words"]),
        ("stops", []),
        ("HALT", ["words"]),
        (f"{LONG_S}TOP", ["words"]),
    ],
)
def test_matches_rules_find_what_the_regex_finds(text: str, rules: list[str]) -> None:
    decision = evaluate(MATCH_RULES, text)
    assert sorted(m.rule for m in decision.matches) == sorted(rules)
    assert (decision.outcome is Outcome.BLOCK) == bool(rules)


def test_keywords_detector_in_a_ruleset() -> None:
    source = """\
ruleset t version "1" {
  detector kw = keywords(words: ["kelvin", "secret"])
  rule found on input { when kw(content).found then block "kw" }
}
"""
    assert [m.rule for m in evaluate(source, f"{KELVIN}ELVIN").matches] == ["found"]
    assert [m.rule for m in evaluate(source, f"a {LONG_S}ecret").matches] == ["found"]
    assert evaluate(source, "nothing here").matches == ()
    assert evaluate(source, "secretive").matches == ()  # whole words only


@pytest.mark.parametrize(
    ("pattern", "ignore_case", "text", "found"),
    [
        ("secret-[0-9]+", False, "my secret-42 here", True),
        ("secret-[0-9]+", False, "my SECRET-42 here", False),
        ("secret-[0-9]+", True, "my SECRET-42 here", True),
        ("secret-[0-9]+", True, "nothing to see", False),
        ("key", True, "the \u212aey", True),  # the Kelvin sign folds to k: non-ASCII text is searched
        ("(?i)token", False, "TOKEN", True),
    ],
)
def test_a_regex_detector_is_screened_as_its_flags_say(
    pattern: str, ignore_case: bool, text: str, found: bool
) -> None:
    params = RegexParams(pattern=pattern, type="T", ignore_case=ignore_case)
    assert RegexDetector(params, SETTINGS).detect(text).found is found
    flags = regex.IGNORECASE if ignore_case else 0
    assert (regex.search(pattern, text, flags) is not None) is found
