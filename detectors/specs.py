"""Detector specs: names, typed parameters, result types and costs, readable without any model."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator

from detectors.base import Detector

SECRET_TYPES = (
    "AWS_ACCESS_KEY",
    "GITHUB_TOKEN",
    "SLACK_TOKEN",
    "PRIVATE_KEY",
    "JWT",
    "GENERIC_SECRET",
)


class CostClass(IntEnum):
    """How expensive a detector is; the evaluator runs cheaper classes first."""

    CHEAP = 1  # pure Python / regex, tens of microseconds
    MODERATE = 2  # many patterns or a lexicon, around a millisecond
    HEAVY = 3  # a model on ONNX Runtime or an NLP pipeline, milliseconds and up


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Service-wide knobs that every detector instance receives."""

    regex_timeout_s: float = 0.05


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
    )
}
