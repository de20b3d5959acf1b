"""presidio's recognizers for English, configured as its default registry configures them."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import presidio_analyzer
import yaml  # type: ignore[import-untyped]
from presidio_analyzer.recognizer_registry import RecognizerRegistryProvider

from detectors.base import ModelVersion

LANGUAGE = "en"

# Every pattern recognizer is enabled; these are not pattern-based (models, services)
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


@functools.cache
def presidio_version() -> ModelVersion:
    """The installed presidio-analyzer, whose recognizers (patterns, context words, scores) `pii` runs."""
    return ModelVersion("presidio-analyzer", importlib.metadata.version("presidio-analyzer"))
