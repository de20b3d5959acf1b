"""Named entities (optional): presidio's SpacyRecognizer on a spaCy model from an installed package."""

from __future__ import annotations

import functools
import importlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import spacy
from presidio_analyzer.nlp_engine import SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from detectors.base import ModelVersion
from detectors.pii.findings import Raw
from detectors.pii.registry import LANGUAGE

NER_SCORE_SOURCE = "SpacyRecognizer"
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
def ner_engine(model: str, entities_only: bool = False) -> Any:
    """presidio's SpacyNlpEngine on the model package ``model``; with ``entities_only``, its NER alone."""
    engine: Any = SpacyNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": model_folder(model)}])
    if entities_only:
        engine.nlp = {LANGUAGE: spacy.load(model_folder(model), exclude=list(_NER_ONLY))}
    else:
        engine.load()
    return engine


class NerRunner:
    """PERSON, LOCATION and NRP from the spaCy model's entities, scored as presidio scores them."""

    def __init__(self, model: str, entities: Sequence[str], index: int) -> None:
        self.engine = ner_engine(model, entities_only=True)
        self.recognizer = SpacyRecognizer(supported_language=LANGUAGE, supported_entities=list(entities))
        self.index = index
        # the package name as configured, and the version of the pipeline actually loaded
        self.model = ModelVersion(model, str(self.engine.nlp[LANGUAGE].meta.get("version", "")))

    def run(self, text: str, timeout_s: float) -> list[Raw]:
        with _NER_LOCK:  # a spaCy pipeline is not documented as thread-safe
            artifacts = self.engine.process_text(text, LANGUAGE)
        results = self.recognizer.analyze(text, self.recognizer.supported_entities, artifacts)
        return [Raw(r.entity_type, r.start, r.end, r.score, self.index) for r in results or ()]
