"""The `pii` detector: presidio's recognizers run directly, scored as AnalyzerEngine scores them."""

from __future__ import annotations

from typing import Any

from presidio_analyzer import PatternRecognizer
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from detectors.base import DetectorError, DetectorResult, Finding, ModelVersion, check_deadline
from detectors.pii.analyzed import AnalyzedRunner
from detectors.pii.context import Tokens, boosted, stop_words, supportive
from detectors.pii.findings import Raw, remove_duplicates
from detectors.pii.ner import NER_SCORE_SOURCE, NerRunner
from detectors.pii.nhs import NhsFilter
from detectors.pii.patterns import PatternRunner
from detectors.pii.phones import PhoneRunner
from detectors.pii.registry import presidio_version, recognizers
from detectors.specs import PII_NER_ENTITIES, PII_PATTERN_ENTITIES, DetectorSettings, PiiParams
from detectors.textscan import MAX_FINDINGS

Runner = PatternRunner | AnalyzedRunner | PhoneRunner | NerRunner


def runner_for(recognizer: Any, index: int) -> PatternRunner | AnalyzedRunner | PhoneRunner:
    """How the detector runs a presidio recognizer: its phone matcher or its patterns directly, where
    the recognizer's class keeps presidio's analyze(); else that analyze()."""
    if isinstance(recognizer, PhoneRecognizer) and type(recognizer).analyze is PhoneRecognizer.analyze:
        return PhoneRunner(recognizer, index)
    if isinstance(recognizer, PatternRecognizer) and type(recognizer).analyze is PatternRecognizer.analyze:
        return PatternRunner(recognizer, index)
    return AnalyzedRunner(recognizer, index)


class PiiDetector:
    """``pii(entities: [...], min_score: 0.4, allow: [...], context: [...])``: personal data, typed.

    Its findings are AnalyzerEngine's (tests/detectors/test_detector_pii.py compares them on a corpus)
    but for one thing: a UK_NHS finding that is a phone number in the text goes (NhsFilter).
    """

    def __init__(self, params: PiiParams, settings: DetectorSettings) -> None:
        ner = [e for e in params.entities if e in PII_NER_ENTITIES]
        if ner and not settings.pii_nlp_model:
            raise DetectorError(f"pii entities {ner} need NER: set pii_nlp_model in the service config")
        patterned = [e for e in params.entities if e in PII_PATTERN_ENTITIES]
        recognized = recognizers(patterned) if patterned else []
        self._runners: list[Runner] = [runner_for(r, i) for i, r in enumerate(recognized)]
        self._contexts = [tuple(r.context or ()) + tuple(params.context) for r in recognized]
        self._names = [type(r).__name__ for r in recognized]
        # the models findings come from: presidio's recognizers, and the spaCy pipeline with NER
        self.models: tuple[ModelVersion, ...] = (presidio_version(),)
        if ner and settings.pii_nlp_model:
            self._add_ner(NerRunner(settings.pii_nlp_model, ner, len(recognized)), tuple(params.context))
        self._nhs = NhsFilter(patterned)
        self._wanted = frozenset(params.entities)
        self._stop = stop_words() - {w.lower() for phrase in params.context for w in phrase.split()}
        self._min_score = params.min_score
        self._allow = frozenset(params.allow)
        self._timeout_s = settings.regex_timeout_s

    def _add_ner(self, named: NerRunner, context: tuple[str, ...]) -> None:
        self._runners.append(named)
        self._contexts.append(context)
        self._names.append(NER_SCORE_SOURCE)
        self.models += (named.model,)

    def detect(self, text: str) -> DetectorResult:
        """Scan ``text``; raise DetectorError when a pattern times out, DeadlineExceeded when the
        request's deadline passes (checked between recognizers, and within them)."""
        found = [r for runner in self._runners for r in self._run(runner, text) if r.type in self._wanted]
        if found:
            found = self._nhs.apply(text, found, self._enhance(text, found), self._timeout_s)
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

    def _run(self, runner: Runner, text: str) -> list[Raw]:
        check_deadline()
        return runner.run(text, self._timeout_s)

    def _enhance(self, text: str, found: list[Raw]) -> list[Raw]:
        """presidio's context step: a recognizer's context word near a finding raises its score.
        Returns the findings with no such word near them."""
        tokens = Tokens.of(text, self._stop)
        plain: list[Raw] = []
        for r in found:
            context = self._contexts[r.recognizer]
            if context and supportive(tokens.around(r.start), context):
                r.score = boosted(r.score)
            else:
                plain.append(r)
        return plain
