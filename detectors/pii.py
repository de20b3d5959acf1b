"""PII detector on presidio-analyzer's recognizers: AnalyzerEngine's findings, without its overhead."""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# presidio, phonenumbers, tldextract and spaCy are imported by this module only, which is imported
# only when a pii detector is built: the compiler reads detectors.specs without them.
import phonenumbers
import phonenumbers.phonenumbermatcher
import presidio_analyzer
import regex
import spacy
import tldextract
import yaml  # type: ignore[import-untyped]
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import normalize_digits_only, region_codes_for_country_code
from presidio_analyzer import EntityRecognizer, PatternRecognizer
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    EmailRecognizer,
    IbanRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UrlRecognizer,
)
from presidio_analyzer.recognizer_registry import RecognizerRegistryProvider
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc

from detectors.base import DetectorError, DetectorResult, Finding, ModelVersion
from detectors.specs import PII_NER_ENTITIES, PII_PATTERN_ENTITIES, DetectorSettings, PiiParams
from detectors.textscan import MAX_FINDINGS, run_timed

pm: Any = phonenumbers.phonenumbermatcher  # the matcher's patterns, which PhoneNumberMatcher's code uses
pnu: Any = phonenumbers.phonenumberutil  # parse()'s helpers, which the phone shortcuts reuse

LANGUAGE = "en"
# presidio's LemmaContextAwareEnhancer defaults: a context word among the five keywords before a
# finding (or in the finding's own token) adds 0.35 to its score, with 0.4 as the floor.
CONTEXT_FACTOR = 0.35
CONTEXT_MIN_SCORE = 0.4
CONTEXT_PREFIX = 5
NER_SCORE_SOURCE = "SpacyRecognizer"
_PLUS = frozenset("+\uff0b")
_TOKEN = re.compile(r"(\w+)|[^\w\s]")
_WORD = re.compile(r"\w+")

# The public-suffix list bundled with tldextract: never fetched, never cached on disk.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


@contextlib.contextmanager
def offline_tldextract() -> Iterator[None]:
    """Point tldextract's module-level extractor (presidio's EmailRecognizer calls it) at the bundled
    suffix list, for a reference AnalyzerEngine in tests and benchmarks; the detector never uses it."""
    module: Any = tldextract.tldextract
    saved = module.TLD_EXTRACTOR
    module.TLD_EXTRACTOR = _OFFLINE_TLD
    try:
        yield
    finally:
        module.TLD_EXTRACTOR = saved


@dataclass(slots=True)
class Raw:
    """A finding while it is being scored: presidio's RecognizerResult without the explanation."""

    type: str
    start: int
    end: int
    score: float
    recognizer: int  # index into the detector's recognizers


# Recognizers: presidio's own registry for English, every pattern recognizer enabled


_NOT_PATTERN_BASED = frozenset(
    {
        "SpacyRecognizer",
        "StanzaRecognizer",
        "TransformersRecognizer",
        "HuggingFaceNerRecognizer",
        "GLiNERRecognizer",
        "MedicalNERRecognizer",
        "AzureAILanguageRecognizer",
        "AhdsRecognizer",
        "BasicLangExtractRecognizer",
        "AzureOpenAILangExtractRecognizer",
        "LangExtractRecognizer",
    }
)


@functools.cache
def _registry_config(all_recognizers: bool) -> dict[str, Any]:
    """presidio's default recognizer configuration; with ``all_recognizers``, the disabled ones too."""
    path = Path(presidio_analyzer.__file__).parent / "conf" / "default_recognizers.yaml"
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["supported_languages"] = [LANGUAGE]
    entries = [e for e in config["recognizers"] if isinstance(e, dict)]
    config["recognizers"] = [e for e in entries if e.get("name") not in _NOT_PATTERN_BASED]
    if all_recognizers:
        for entry in config["recognizers"]:
            entry["enabled"] = entry.get("type") == "predefined"
    return config


def recognizers(entities: Iterable[str], all_recognizers: bool = True) -> list[Any]:
    """Fresh presidio recognizers for ``entities`` in English, configured as AnalyzerEngine's."""
    registry = _registry(all_recognizers)
    wanted = sorted(set(entities))
    found: list[Any] = registry.get_recognizers(language=LANGUAGE, entities=wanted, all_fields=False)
    return sorted(found, key=lambda r: str(r.name))


def _registry(all_recognizers: bool) -> Any:
    """A fresh registry; presidio's warnings about recognizers of other languages are left out."""
    provider = RecognizerRegistryProvider(registry_configuration=_registry_config(all_recognizers))
    log = logging.getLogger("presidio-analyzer")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return provider.create_recognizer_registry()
    finally:
        log.setLevel(level)


def pattern_entities() -> frozenset[str]:
    """Every entity a pattern recognizer of presidio reports in English (for the spec's static list)."""
    found = _registry(True).get_recognizers(language=LANGUAGE, all_fields=True)
    return frozenset(e for r in found for e in r.supported_entities)


# Context: presidio's lemma enhancer over a simple tokenisation (lemma = lower-cased token)


@dataclass(frozen=True, slots=True)
class Tokens:
    """The text's tokens (words and single punctuation marks): lower-cased (the lemmas), with their ends."""

    words: list[str]
    ends: list[int]
    is_word: list[bool]
    stop: frozenset[str]

    @classmethod
    def of(cls, text: str, stop: frozenset[str] | None = None) -> Tokens:
        matches = list(_TOKEN.finditer(text))
        words = [m[0].lower() for m in matches]
        ends = [m.end() for m in matches]
        return cls(words, ends, [m.lastindex == 1 for m in matches], stop or stop_words())

    def keyword(self, i: int) -> bool:
        return self.is_word[i] and is_keyword(self.words[i], self.stop)

    def around(self, start: int) -> set[str]:
        """The keywords presidio's LemmaContextAwareEnhancer takes as a finding's context.

        The token at ``start`` (the first one ending after it) and back from it, five keywords and
        the finding's own; forward from it, the first keyword.
        """
        index = bisect.bisect_right(self.ends, start)
        found: set[str] = set()
        taken = 0
        for i in range(min(index, len(self.words) - 1), -1, -1) if index < len(self.words) else ():
            if self.keyword(i):
                found.add(self.words[i])
                taken += 1
                if taken > CONTEXT_PREFIX:
                    break
        forward = next((self.words[i] for i in range(index, len(self.words)) if self.keyword(i)), None)
        return found | ({forward} if forward else set())


@functools.cache
def stop_words() -> frozenset[str]:
    """spaCy's English stop words, less the recognizers' context words ("call", "my", "us"): with
    spaCy, "call me on ..." would not count as context."""
    found = recognizers(PII_PATTERN_ENTITIES)
    context = {w.lower() for r in found for phrase in r.context or () for w in phrase.split()}
    return frozenset(STOP_WORDS) - context


def is_keyword(word: str, stop: frozenset[str] | None = None) -> bool:
    """A lower-cased word presidio keeps as a context keyword: not a stop word, not "be"."""
    return word not in (stop or stop_words()) and word not in ("-pron-", "be")


class TokenNlpEngine(NoOpNlpEngine):
    """presidio NLP artifacts from the same tokens, with no model: lets AnalyzerEngine apply context words.

    The detector does not use it (it scores context itself, over Tokens); it is the reference that
    shows the detector's findings equal AnalyzerEngine's with context (tests, benchmarks/pii_bench.py).
    """

    def __init__(self) -> None:
        super().__init__(models=[{"lang_code": LANGUAGE, "model_name": "palisade-tokens"}])
        self.load()

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        matches = list(_TOKEN.finditer(text))
        doc = Doc(self._vocab, words=[m[0] for m in matches] or [], spaces=[False] * len(matches))
        lemmas = [m[0].lower() for m in matches]
        return NlpArtifacts([], doc, [m.start() for m in matches], lemmas, self, language)

    def is_stopword(self, word: str, language: str) -> bool:
        return not is_keyword(word.lower())

    def is_punct(self, word: str, language: str) -> bool:
        return _TOKEN.fullmatch(word) is not None and not _WORD.fullmatch(word)


def supportive(surrounding: Iterable[str], context: Sequence[str]) -> bool:
    """presidio's substring matching: some context word occurs inside some surrounding keyword."""
    words = [w for w in surrounding if w]
    return any(c.lower() in w for c in context for w in words)


def boosted(score: float) -> float:
    return min(max(score + CONTEXT_FACTOR, CONTEXT_MIN_SCORE), EntityRecognizer.MAX_SCORE)


# Duplicates: presidio's EntityRecognizer.remove_duplicates, on Raw findings


def remove_duplicates(found: list[Raw]) -> list[Raw]:
    """Drop zero scores, exact duplicates, and findings inside a same-type one with an equal or higher one."""
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


# Pattern recognizers, run directly


def _email_valid(value: str) -> bool | None:
    """EmailRecognizer.validate_result on the bundled suffix list (presidio's module-level one may fetch)."""
    return _OFFLINE_TLD(value).fqdn != ""


# "Non schema URL" tries presidio's 600-TLD alternation at every letter of the text. Every match has
# a dot followed by a letter (the TLD) within its first 261 characters, all of them from the host
# class, so this lookahead is implied by the pattern and only skips positions where it cannot match.
_URL_PREFILTER = r"(?=[a-z0-9.\-]{0,261}[.][a-z])"


def _source(recognizer: PatternRecognizer, pattern: Any) -> str:
    if isinstance(recognizer, UrlRecognizer) and pattern.regex == "(?i)" + UrlRecognizer.BASE_URL_REGEX:
        return "(?i)" + _URL_PREFILTER + UrlRecognizer.BASE_URL_REGEX
    return str(pattern.regex)


# The costliest of presidio's patterns cannot match across a space, and each match contains its
# anchor below. Their matches then lie inside the space-free chunks of the text that hold an anchor,
# and scanning only those chunks (finditer with pos and endpos) finds exactly what scanning the whole
# text finds: no element of these patterns (literal, class, repetition) matches a space or an empty
# string, and their only context checks (\b; lookarounds that refuse word characters, ":", or "."
# and a digit; the URL lookahead above, which reads no space) answer next to a space as they do at
# either end of a string (the regex module reads the text before pos, and ends it at endpos). Each
# anchor is keyed by the SHA-256 of the pattern text it was read from and holds with presidio's
# default flags only: another pattern, or other flags, scan the whole text
# (tests/detectors/test_detector_pii_prefilters.py checks that they apply, and compares both scans).
_ANCHORED_FLAGS = regex.IGNORECASE | regex.MULTILINE | regex.DOTALL
_ANCHORS: dict[str, str] = {
    # Non schema URL: the dot before the TLD, and its first letter (all 675 TLDs are ASCII letters;
    # a non-ASCII character is let through in case one matches a letter without case)
    "7405c3a8b8c39f4d": r"(?i)[.](?:[a-z]|[^\x00-\x7f])",
    # Email (Medium): its "[@]"
    "004723abbb67ff6c": "@",
    # IPv4_mapped, IPv4_embedded, IPv6 (every alternative) and IPv6_unspecified: a ":"
    "5def597d3b4dac73": ":",
    "66197b1f8e63cd27": ":",
    "c4f79b73053cd5f0": ":",
    "c696285024ae5b47": ":",
    # Driver License - Alphanumeric (weak): every one of its alternatives has a [0-9]
    "ab1eb0b240f24580": "[0-9]",
    # USA DEA Certificate Number (weak): both alternatives end with \d{7}
    "8b00da21c7ca480a": r"\d",
}


def digest(source: str) -> str:
    """The key of a pattern text in _ANCHORS: its SHA-256, the first 16 hex digits."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def _anchor(pattern: Any, flags: int) -> regex.Pattern[str] | None:
    source = _ANCHORS.get(digest(str(pattern.regex))) if flags == _ANCHORED_FLAGS else None
    return regex.compile(source, flags=flags) if source is not None else None


@dataclass(frozen=True, slots=True)
class _Pattern:
    compiled: regex.Pattern[str]
    score: float
    anchor: regex.Pattern[str] | None = None  # set: matches lie in space-free chunks holding one

    def matches(self, text: str, timeout_s: float) -> list[regex.Match[str]]:
        """finditer over the text, or over the chunks that hold an anchor; within the timeout either
        way (a finditer's timeout bounds the whole iteration, so the chunks share one deadline)."""
        return run_timed(lambda concurrent, left_s: self._scan(text, concurrent, left_s), text, timeout_s)

    def _scan(self, text: str, concurrent: bool, timeout_s: float) -> list[regex.Match[str]]:
        if self.anchor is None:
            return list(self.compiled.finditer(text, concurrent=concurrent, timeout=timeout_s))
        deadline = time.monotonic() + timeout_s
        found: list[regex.Match[str]] = []
        pos = 0
        search = self.anchor.search
        while (hit := search(text, pos, concurrent=concurrent, timeout=_left(deadline))) is not None:
            start = text.rfind(" ", 0, hit.start()) + 1
            end = text.find(" ", hit.start())
            end = len(text) if end < 0 else end
            found += self.compiled.finditer(text, start, end, concurrent=concurrent, timeout=_left(deadline))
            pos = end
        return found


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("regex timeout")
    return left


class _Patterns:
    """One PatternRecognizer's patterns, precompiled, scored as PatternRecognizer.analyze scores them."""

    def __init__(self, recognizer: Any, index: int) -> None:
        flags = recognizer.global_regex_flags
        self.patterns = [
            _Pattern(regex.compile(_source(recognizer, p), flags=flags), p.score, _anchor(p, flags))
            for p in recognizer.patterns
        ]
        self.type = recognizer.supported_entities[0]
        self.index = index
        self.validate: Callable[[str], bool | None] = (
            _email_valid if isinstance(recognizer, EmailRecognizer) else recognizer.validate_result
        )
        self.invalidate = recognizer.invalidate_result

    def run(self, text: str, timeout_s: float) -> list[Raw]:
        found: list[Raw] = []
        for pattern in self.patterns:
            try:
                matches = pattern.matches(text, timeout_s)
            except TimeoutError as exc:
                raise DetectorError(f"pii pattern timed out after {timeout_s:g}s") from exc
            found += (r for m in matches if (r := self._score(text, m, pattern.score)) is not None)
        return remove_duplicates(found)

    def _score(self, text: str, match: regex.Match[str], score: float) -> Raw | None:
        start, end = match.span()
        if start == end:
            return None
        value = text[start:end]
        valid = self.validate(value)
        if valid is not None:
            score = EntityRecognizer.MAX_SCORE if valid else EntityRecognizer.MIN_SCORE
        if self.invalidate(value):
            score = EntityRecognizer.MIN_SCORE
        return Raw(self.type, start, end, score, self.index) if score > EntityRecognizer.MIN_SCORE else None


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


class _Analyzed:
    """A recognizer with its own analyze(): called as AnalyzerEngine calls it (unless it cannot find
    anything in the text)."""

    def __init__(self, recognizer: Any, index: int) -> None:
        self.recognizer = recognizer
        self.index = index
        self.needs = _needs(recognizer)

    def run(self, text: str, timeout_s: float) -> list[Raw]:
        if self.needs is not None:
            needs = self.needs
            try:
                hit = run_timed(lambda c, t: needs.search(text, concurrent=c, timeout=t), text, timeout_s)
                if hit is None:
                    return []
            except TimeoutError as exc:
                raise DetectorError(f"pii pattern timed out after {timeout_s:g}s") from exc
        results = self.recognizer.analyze(text, self.recognizer.supported_entities, None)
        return [Raw(r.entity_type, r.start, r.end, r.score, self.index) for r in results or ()]


# Phone numbers: PhoneRecognizer's matcher per region, without the (candidate, region) pairs that
# cannot give a valid number, and parsing an international (+) candidate once for all regions


_NON_DIGITS = re.compile(r"[^0-9]")
_EXTENSION_MARKS = frozenset("#\uff03~\uff5e,;")  # with letters: what can start an extension
_MIN_NSN, _MAX_NSN = 2, 17  # parse() refuses national numbers shorter or longer


@dataclass(frozen=True, slots=True)
class _Prefix:
    """A region's national_prefix_for_parsing, as _maybe_strip_national_prefix_carrier_code uses it."""

    pattern: re.Pattern[str] | None
    transform: str | None

    @classmethod
    def of(cls, metadata: Any) -> _Prefix:
        source = metadata.national_prefix_for_parsing
        return cls(re.compile(source) if source else None, metadata.national_prefix_transform_rule or None)

    def matches(self, number: str) -> bool:
        return self.pattern is not None and self.pattern.match(number) is not None

    def outcomes(self, number: str) -> tuple[str, ...] | None:
        """What stripping may leave of ``number``: itself, or the number with its prefix removed (or
        transformed, with the same re.sub); which one depends on checks not made here. None: a rule
        phonenumbers itself cannot apply (a transform without groups)."""
        match = self.pattern.match(number) if self.pattern is not None and number else None
        if match is None or self.pattern is None:
            return (number,)
        groups = match.groups()
        if self.transform is None or groups[-1:] == (None,):
            return (number, number[match.end() :])
        if not groups:
            return None
        return (number, self.pattern.sub(self.transform, number, count=1))


@dataclass(frozen=True, slots=True)
class _NationalNumbers:
    """What parsing a candidate in a region, without a plus sign, letters or an IDD prefix, can give.

    phonenumbers' parse() then takes the national number from the candidate's digits in two ways
    only. Either as they are, less what the region's national_prefix_for_parsing matches at their
    start (removed, or rewritten by its transform rule); or, when the digits start with the region's
    country code, without that code, less what the region's prefix matches, less what the prefix of
    the region parse() then switches to (the main region of the code) matches. Each removal may be
    undone by a check this class does not make, so it keeps both outcomes (``nationals``).

    A valid number needs its national number to have 2 to 17 digits and a possible length, and to
    match the general pattern and the pattern of some number type (fixed line, mobile, toll free,
    ...) of some region with that code (``possible``). And when the code was not taken from the
    digits and no prefix was removed, the national number is the digits themselves and the matcher
    (leniency VALID) wants a national prefix wherever the main region's format for that number
    asks for one (_is_national_prefix_present_if_required): that prefix must match the digits
    (``prefix_missing``). ``test_phone_shortcuts_find_what_phonenumbers_finds`` and
    tests/detectors/test_detector_pii_prefilters.py compare with phonenumbers itself.
    """

    idd: re.Pattern[str]
    code: str
    own: _Prefix  # the region's
    after_code: _Prefix  # once the code is removed: the main region's (the region's when it is the main one)
    main: _Prefix  # the main region's, which _is_national_prefix_present_if_required consults
    formats: tuple[Any, ...]  # the main region's number formats
    lengths: frozenset[int]
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, region: str) -> _NationalNumbers:
        metadata: Any = PhoneMetadata.metadata_for_region(region)
        code = metadata.country_code
        codes = region_codes_for_country_code(code)
        regions: list[Any] = [PhoneMetadata.metadata_for_region(r) for r in codes]
        main: Any = PhoneMetadata.metadata_for_region(codes[0])
        descs = [m.general_desc for m in regions]
        lengths = frozenset(n for d in descs for n in d.possible_length)
        if not all(d.possible_length for d in descs):
            lengths = frozenset(range(_MIN_NSN, _MAX_NSN + 1))
        union = "|".join(_valid_pattern(m) for m in regions)
        return cls(
            re.compile(metadata.international_prefix or "(?!)"),
            str(code),
            _Prefix.of(metadata),
            _Prefix.of(metadata if codes[0] == region else main),
            _Prefix.of(main),
            tuple(main.number_format),
            lengths,
            re.compile(union or "(?!)"),
        )

    def nationals(self, digits: str) -> set[str] | None:
        """Every national number parse() may take from these digits (None: cannot tell)."""
        found = self.own.outcomes(digits)
        if found is None:
            return None
        out = set(found)
        if digits.startswith(self.code):
            rests = self.own.outcomes(digits[len(self.code) :])
            if rests is None:
                return None
            for rest in rests:
                after = self.after_code.outcomes(rest)
                if after is None:
                    return None
                out.update(after)
        return out

    def possible(self, digits: str) -> bool:
        """Whether these digits may parse into a number found at leniency VALID or stricter (False: never)."""
        if self.idd.match(digits):
            return True
        nationals = self.nationals(digits)
        if nationals is None:
            return True
        if not any(
            _MIN_NSN <= len(n) <= _MAX_NSN
            and len(n) in self.lengths
            and self.pattern.fullmatch(n) is not None
            for n in nationals
        ):
            return False
        return not self.prefix_missing(digits)

    def prefix_missing(self, digits: str) -> bool:
        """The digits, no code or prefix removed, are a national number whose format wants a prefix."""
        if digits.startswith(self.code) or self.own.matches(digits) or self.main.matches(digits):
            return False
        rule = pnu._choose_formatting_pattern_for_number(self.formats, digits)
        return (
            rule is not None
            and bool(rule.national_prefix_formatting_rule)
            and not rule.national_prefix_optional_when_formatting
            and not pnu._formatting_rule_has_first_group_only(rule.national_prefix_formatting_rule)
        )


_NUMBER_TYPES = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)


def _valid_pattern(metadata: Any) -> str:
    """What is_valid_number_for_region asks of a national number: the general pattern, and a type's."""
    general = metadata.general_desc.national_number_pattern
    types = [getattr(metadata, t) for t in _NUMBER_TYPES]
    typed = "|".join(
        f"(?:{d.national_number_pattern})" for d in types if d is not None and d.national_number_pattern
    )
    if not general or not typed:
        return "(?!)"
    return f"(?=(?:{general})\\Z)(?:{typed})"


@functools.cache
def _national(region: str) -> _NationalNumbers:
    return _NationalNumbers.of(region)


def digits_of(candidate: str) -> str:
    """normalize_digits_only(candidate), with a fast path for ASCII."""
    return _NON_DIGITS.sub("", candidate) if candidate.isascii() else str(normalize_digits_only(candidate))


def filterable(candidate: str) -> bool:
    """Candidates the national-number check applies to: no plus sign, letters or extension marks."""
    return not any(c in _PLUS or c in _EXTENSION_MARKS or c.isalpha() for c in candidate)


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One string PhoneNumberMatcher would parse: the candidate or a group inside it."""

    text: str
    offset: int
    digits: str | None  # None: not filterable, always parsed
    plus: bool
    check_tries: bool  # the matcher checks its try budget before this attempt


@dataclass(frozen=True, slots=True)
class _Candidate:
    """What PhoneNumberMatcher._extract_match does with a candidate, less the region-specific parsing."""

    skipped: bool  # a date or a time stamp
    attempts: tuple[_Attempt, ...]  # the whole candidate, then its inner groups in the matcher's order


def _attempt(text: str, offset: int, check_tries: bool) -> _Attempt:
    plus = text.lstrip()[:1] in _PLUS
    return _Attempt(text, offset, digits_of(text) if filterable(text) else None, plus, check_tries)


def _candidate(text: str, candidate: str, offset: int) -> _Candidate:
    if pm._SLASH_SEPARATED_DATES.search(candidate):
        return _Candidate(True, ())
    if pm._TIME_STAMPS.search(candidate) and pm._TIME_STAMPS_SUFFIX.match(text[offset + len(candidate) :]):
        return _Candidate(True, ())
    attempts = [_attempt(candidate, offset, False)]
    for inner in pm._INNER_MATCHES:
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
    return _Candidate(False, tuple(attempts))


def _trim(candidate: str) -> str:
    trailing = pm._UNWANTED_END_CHAR_PATTERN.search(candidate)
    return candidate[: trailing.start()] if trailing else candidate


class _Shared:
    """Per text, across regions: candidates found, their attempts, and parses of international numbers."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.searches: dict[int, tuple[int, str] | None] = {}
        self.candidates: dict[tuple[str, int], _Candidate] = {}
        self.international: dict[tuple[str, int], Any] = {}

    def search(self, index: int) -> tuple[int, str] | None:
        if index not in self.searches:
            match = pm._PATTERN.search(self.text, index)
            found = None
            if match is not None:
                raw = self.text[match.start() : match.end()]
                second = pm._SECOND_NUMBER_START_PATTERN.search(raw)
                found = (match.start(), raw[: second.start()] if second else raw)
            self.searches[index] = found
        return self.searches[index]

    def candidate(self, candidate: str, offset: int) -> _Candidate:
        key = (candidate, offset)
        if key not in self.candidates:
            self.candidates[key] = _candidate(self.text, candidate, offset)
        return self.candidates[key]


class _Matcher(phonenumbers.PhoneNumberMatcher):
    """PhoneNumberMatcher with the region-independent work shared across regions, and without parsing
    what cannot be a valid number in its region (_NationalNumbers). Finds exactly what it finds."""

    def __init__(self, shared: _Shared, region: str, leniency: Any) -> None:
        super().__init__(shared.text, region, leniency=leniency)
        self._shared = shared
        # the shortcut assumes what leniency VALID (presidio's) and the stricter ones check
        self._national = _national(region) if leniency >= pm.Leniency.VALID else None

    def _find(self, index: int) -> Any:
        found = self._shared.search(index)
        while self._max_tries > 0 and found is not None:
            start, candidate = found
            if len(candidate) >= self._min_candidate_length:
                match = self._extract_match(candidate, start)
                if match is not None:
                    return match
                self._max_tries -= 1
            found = self._shared.search(start + len(candidate))
        return None

    def _extract_match(self, candidate: str, offset: int) -> Any:
        entry = self._shared.candidate(candidate, offset)
        if entry.skipped:
            return None
        whole, *inner = entry.attempts
        match = self._try(whole)
        if match is not None:
            return match
        for attempt in inner:
            if attempt.check_tries and self._max_tries <= 0:
                return None
            match = self._try(attempt)
            if match is not None:
                return match
            self._max_tries -= 1
        return None

    def _try(self, attempt: _Attempt) -> Any:
        if attempt.plus:  # the region plays no part in parsing "+..."
            key = (attempt.text, attempt.offset)
            if key not in self._shared.international:
                self._shared.international[key] = self._parse_and_verify(attempt.text, attempt.offset)
            return self._shared.international[key]
        national = self._national
        if national is not None and attempt.digits is not None and not national.possible(attempt.digits):
            return None
        return self._parse_and_verify(attempt.text, attempt.offset)


class _Phones:
    """PhoneRecognizer.analyze: the union over its regions, duplicates removed."""

    def __init__(self, recognizer: Any, index: int) -> None:
        self.regions = tuple(recognizer.supported_regions)
        self.leniency: Any = recognizer.leniency
        self.type = recognizer.supported_entities[0]
        self.score = recognizer.SCORE
        self.index = index

    def run(self, text: str, timeout_s: float) -> list[Raw]:
        shared = _Shared(text)
        found = [
            Raw(self.type, m.start, m.end, self.score, self.index)
            for region in self.regions
            for m in _Matcher(shared, region, self.leniency)
        ]
        return remove_duplicates(found)


def _runner(recognizer: Any, index: int) -> _Patterns | _Analyzed | _Phones:
    if isinstance(recognizer, PhoneRecognizer) and type(recognizer).analyze is PhoneRecognizer.analyze:
        return _Phones(recognizer, index)
    if isinstance(recognizer, PatternRecognizer) and type(recognizer).analyze is PatternRecognizer.analyze:
        return _Patterns(recognizer, index)
    return _Analyzed(recognizer, index)


# Named entities (optional): presidio's SpacyRecognizer on a spaCy model from an installed package


_NER_LOCK = threading.Lock()


# Context words are scored over Tokens, so the detector needs only the model's entities: the
# tagger, parser and lemmatizer are left out (the small English model then runs in about 60% of
# the time, with the same entities).
_NER_ONLY = ("tagger", "parser", "attribute_ruler", "lemmatizer", "senter")


def model_folder(model: str) -> str:
    """The installed folder of the spaCy model package ``model`` (loaded from there: never downloaded)."""
    package = importlib.import_module(model)
    folder = Path(package.__file__ or "").parent
    return os.fspath(next((p for p in sorted(folder.iterdir()) if (p / "config.cfg").is_file()), folder))


@functools.cache
def _ner_engine(model: str, entities_only: bool = False) -> Any:
    """presidio's SpacyNlpEngine on the model package ``model``; with ``entities_only``, its NER alone."""
    engine: Any = SpacyNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": model_folder(model)}])
    if entities_only:
        engine.nlp = {LANGUAGE: spacy.load(model_folder(model), exclude=list(_NER_ONLY))}
    else:
        engine.load()
    return engine


@functools.cache
def presidio_version() -> ModelVersion:
    """The installed presidio-analyzer, whose recognizers (patterns, context words, scores) `pii` runs."""
    return ModelVersion("presidio-analyzer", importlib.metadata.version("presidio-analyzer"))


class _Ner:
    """PERSON, LOCATION and NRP from the spaCy model's entities, scored as presidio scores them."""

    def __init__(self, model: str, entities: Sequence[str], index: int) -> None:
        self.engine = _ner_engine(model, entities_only=True)
        self.recognizer = SpacyRecognizer(supported_language=LANGUAGE, supported_entities=list(entities))
        self.index = index
        # the package name as configured, and the version of the pipeline actually loaded
        self.model = ModelVersion(model, str(self.engine.nlp[LANGUAGE].meta.get("version", "")))

    def run(self, text: str, timeout_s: float) -> list[Raw]:
        with _NER_LOCK:  # a spaCy pipeline is not documented as thread-safe
            artifacts = self.engine.process_text(text, LANGUAGE)
        results = self.recognizer.analyze(text, self.recognizer.supported_entities, artifacts)
        return [Raw(r.entity_type, r.start, r.end, r.score, self.index) for r in results or ()]


# The detector


class PiiDetector:
    """``pii(entities: [...], min_score: 0.4, allow: [...], context: [...])``: personal data, typed."""

    def __init__(self, params: PiiParams, settings: DetectorSettings) -> None:
        ner = [e for e in params.entities if e in PII_NER_ENTITIES]
        if ner and not settings.pii_nlp_model:
            raise DetectorError(f"pii entities {ner} need NER: set pii_nlp_model in the service config")
        patterned = [e for e in params.entities if e in PII_PATTERN_ENTITIES]
        recognized = recognizers(patterned) if patterned else []
        self._runners: list[_Patterns | _Analyzed | _Phones | _Ner] = [
            _runner(r, i) for i, r in enumerate(recognized)
        ]
        self._contexts: list[tuple[str, ...]] = [
            tuple(r.context or ()) + tuple(params.context) for r in recognized
        ]
        # the models findings come from: presidio's recognizers, and the spaCy pipeline with NER
        self.models: tuple[ModelVersion, ...] = (presidio_version(),)
        if ner and settings.pii_nlp_model:
            named = _Ner(settings.pii_nlp_model, ner, len(recognized))
            self._runners.append(named)
            self._contexts.append(tuple(params.context))
            self.models += (named.model,)
        self._wanted = frozenset(params.entities)
        self._stop = stop_words() - {w.lower() for phrase in params.context for w in phrase.split()}
        self._min_score = params.min_score
        self._allow = frozenset(params.allow)
        self._timeout_s = settings.regex_timeout_s
        self._names = [type(r).__name__ for r in recognized] + ([NER_SCORE_SOURCE] if ner else [])

    def detect(self, text: str) -> DetectorResult:
        """Scan ``text``; raise DetectorError when a pattern times out."""
        found = [
            r for runner in self._runners for r in runner.run(text, self._timeout_s) if r.type in self._wanted
        ]
        if found:
            found = self._enhance(text, found)
        kept = remove_duplicates([r for r in found if r.score >= self._min_score])
        kept = sorted(
            (r for r in kept if text[r.start : r.end] not in self._allow),
            key=lambda r: (r.start, r.end, r.type),
        )
        return DetectorResult(
            tuple(
                Finding(r.type, r.start, r.end, r.score, self._names[r.recognizer])
                for r in kept[:MAX_FINDINGS]
            )
        )

    def _enhance(self, text: str, found: list[Raw]) -> list[Raw]:
        """presidio's context step: a recognizer's context word near a finding raises its score."""
        tokens = Tokens.of(text, self._stop)
        for r in found:
            context = self._contexts[r.recognizer]
            if context and supportive(tokens.around(r.start), context):
                r.score = boosted(r.score)
        return found
