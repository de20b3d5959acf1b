"""Context words: presidio's lemma enhancer over a simple tokenisation (lemma = lower-cased token)."""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc

from detectors.pii.registry import LANGUAGE, recognizers
from detectors.specs import PII_PATTERN_ENTITIES

# presidio's LemmaContextAwareEnhancer defaults: a context word among the five keywords before a
# finding (or in the finding's own token) adds 0.35 to its score, with 0.4 as the floor.
CONTEXT_FACTOR = 0.35
CONTEXT_MIN_SCORE = 0.4
CONTEXT_PREFIX = 5
_TOKEN = re.compile(r"(\w+)|[^\w\s]")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Tokens:
    """The text's tokens (words and single punctuation marks): lower-cased (the lemmas), with their ends."""

    words: list[str]
    ends: list[int]
    is_word: list[bool]
    stop: frozenset[str]

    @classmethod
    def of(cls, text: str, stop: frozenset[str] | None = None) -> Tokens:
        words: list[str] = []
        ends: list[int] = []
        is_word: list[bool] = []
        # one match at a time: a list of all of them (the garbage collector tracks each) made the
        # collector run over and over on a long text, four times the time of the scan itself
        for m in _TOKEN.finditer(text):
            words.append(m[0].lower())
            ends.append(m.end())
            is_word.append(m.lastindex == 1)
        return cls(words, ends, is_word, stop or stop_words())

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


def supportive(surrounding: Iterable[str], context: Sequence[str]) -> bool:
    """presidio's substring matching: some context word occurs inside some surrounding keyword."""
    words = [w for w in surrounding if w]
    return any(c.lower() in w for c in context for w in words)


def boosted(score: float) -> float:
    """A score raised by a context word, as presidio raises it."""
    return min(max(score + CONTEXT_FACTOR, CONTEXT_MIN_SCORE), EntityRecognizer.MAX_SCORE)


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
