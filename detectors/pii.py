"""PII detector on presidio-analyzer's recognizers: AnalyzerEngine's findings, without its overhead."""

from __future__ import annotations

import bisect
import contextlib
import functools
import importlib
import importlib.metadata
import logging
import os
import re
import threading
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
    PhoneRecognizer,
    SpacyRecognizer,
    UrlRecognizer,
)
from presidio_analyzer.recognizer_registry import RecognizerRegistryProvider
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc

from detectors.base import DetectorError, DetectorResult, Finding, ModelVersion
from detectors.specs import PII_NER_ENTITIES, PII_PATTERN_ENTITIES, DetectorSettings, PiiParams
from detectors.textscan import MAX_FINDINGS

pm: Any = phonenumbers.phonenumbermatcher  # the matcher's patterns, which PhoneNumberMatcher's code uses
sre_parse: Any = importlib.import_module("re._parser")

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


@dataclass(frozen=True, slots=True)
class _Pattern:
    compiled: regex.Pattern[str]
    score: float


class _Patterns:
    """One PatternRecognizer's patterns, precompiled, scored as PatternRecognizer.analyze scores them."""

    def __init__(self, recognizer: Any, index: int) -> None:
        flags = recognizer.global_regex_flags
        self.patterns = [
            _Pattern(regex.compile(_source(recognizer, p), flags=flags), p.score) for p in recognizer.patterns
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
                matches = list(pattern.compiled.finditer(text, timeout=timeout_s))
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


class _Analyzed:
    """A recognizer with its own analyze(): called as AnalyzerEngine calls it."""

    def __init__(self, recognizer: Any, index: int) -> None:
        self.recognizer = recognizer
        self.index = index

    def run(self, text: str, timeout_s: float) -> list[Raw]:
        results = self.recognizer.analyze(text, self.recognizer.supported_entities, None)
        return [Raw(r.entity_type, r.start, r.end, r.score, self.index) for r in results or ()]


# Phone numbers: PhoneRecognizer's matcher per region, without the (candidate, region) pairs that
# cannot give a valid number, and parsing an international (+) candidate once for all regions


_NON_DIGITS = re.compile(r"[^0-9]")
_TRANSFORM_KEEPS = re.compile(r"(?:[\\$]\d)*")  # a transform rule made of group references only
_EXTENSION_MARKS = frozenset("#\uff03~\uff5e,;")  # with letters: what can start an extension


@dataclass(frozen=True, slots=True)
class _NationalNumbers:
    """What a valid number parsed in a region without a plus sign or an IDD prefix must look like.

    Its country code is the region's. Parsing takes its national part from the candidate's digits
    by removing a prefix only: at most the country code and twice a national prefix (carrier code
    included: whatever national_prefix_for_parsing matches, of the region or of the main region of
    its code, the only two parse() consults). Validity then needs that national part to have a
    possible length, and to match the general pattern and the pattern of some number type (fixed
    line, mobile, toll free, ...), of some region with that code. A region
    whose prefix transform could add digits gets no filter (``max_strip`` None).
    """

    idd: re.Pattern[str]
    max_strip: int | None
    lengths: frozenset[int]
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, region: str) -> _NationalNumbers:
        metadata: Any = PhoneMetadata.metadata_for_region(region)
        code = metadata.country_code
        codes = region_codes_for_country_code(code)
        regions: list[Any] = [PhoneMetadata.metadata_for_region(r) for r in codes]
        parsing: list[Any] = [metadata, PhoneMetadata.metadata_for_region(codes[0])]
        prefixes = [m.national_prefix_for_parsing or m.national_prefix or "" for m in parsing]
        adds_digits = any(
            not _TRANSFORM_KEEPS.fullmatch(m.national_prefix_transform_rule or "") for m in parsing
        )
        descs = [m.general_desc for m in regions]
        lengths = frozenset(n for d in descs for n in d.possible_length)
        if not all(d.possible_length for d in descs):
            lengths = frozenset(range(2, 18))
        union = "|".join(_valid_pattern(m) for m in regions)
        return cls(
            re.compile(metadata.international_prefix or "(?!)"),
            None if adds_digits else len(str(code)) + 2 * max(_width(p) for p in prefixes),
            lengths,
            re.compile(union or "(?!)"),
        )

    def possible(self, digits: str) -> bool:
        """Whether some national part these digits can be parsed into is valid (False: never)."""
        if self.max_strip is None or self.idd.match(digits):
            return True
        shortest = max(2, len(digits) - self.max_strip)
        return any(
            self.pattern.fullmatch(digits[len(digits) - n :]) is not None
            for n in self.lengths
            if shortest <= n <= len(digits)
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


def _width(pattern: str) -> int:
    """The most characters ``pattern`` can match (a large number when unbounded)."""
    return min(int(sre_parse.parse(pattern).getwidth()[1]), 1 << 16) if pattern else 0


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
        self._national = _national(region)

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
        if attempt.digits is not None and not self._national.possible(attempt.digits):
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
