"""The private names of phonenumbers that the pii detector's phone matcher uses exist and behave as read.

detectors/pii/candidates.py, nationals.py and phones.py say why each is needed. A phonenumbers release
that renames or changes one fails here: read its new code, then update those modules (or use a public
name, if one now does the job). test_phone_shortcuts_find_what_phonenumbers_finds and
tests/detectors/test_detector_pii_prefilters.py compare the whole matcher with phonenumbers' own.
"""

from __future__ import annotations

import inspect
import re
from types import ModuleType

import pytest
from phonenumbers import (
    PhoneMetadata,
    PhoneNumberMatch,
    PhoneNumberMatcher,
    phonenumbermatcher,
    phonenumberutil,
)

PATTERNS = [
    (phonenumbermatcher, "_PATTERN"),
    (phonenumbermatcher, "_SLASH_SEPARATED_DATES"),
    (phonenumbermatcher, "_TIME_STAMPS"),
    (phonenumbermatcher, "_TIME_STAMPS_SUFFIX"),
    (phonenumberutil, "_SECOND_NUMBER_START_PATTERN"),
    (phonenumberutil, "_UNWANTED_END_CHAR_PATTERN"),
]


@pytest.mark.parametrize(("module", "name"), PATTERNS)
def test_the_matchers_patterns_are_compiled_patterns(module: ModuleType, name: str) -> None:
    assert isinstance(getattr(module, name, None), re.Pattern)


def test_the_matchers_patterns_find_what_the_candidates_module_expects() -> None:
    text = "Call 415-555-2671 or +44 20 7946 0958, on 1/2/2024 at 2024-01-02 10:30"
    found = [m.group() for m in phonenumbermatcher._PATTERN.finditer(text)]
    assert found == ["415-555-2671", "+44 20 7946 0958", "1/2/2024", "2024-01-02 10", "30"]
    assert phonenumbermatcher._SLASH_SEPARATED_DATES.search("1/2/2024")
    assert phonenumbermatcher._TIME_STAMPS.search("2024-01-02 10")
    assert phonenumbermatcher._TIME_STAMPS_SUFFIX.match(":30")
    assert _starts(phonenumberutil._SECOND_NUMBER_START_PATTERN, "415-555-2671/x12") == [12]
    assert _starts(phonenumberutil._UNWANTED_END_CHAR_PATTERN, "415-555-2671 -)") == [12]


def _starts(pattern: re.Pattern[str], text: str) -> list[int]:
    return [m.start() for m in pattern.finditer(text)]


def test_the_inner_matches_are_patterns_with_one_group() -> None:
    inner = phonenumbermatcher._INNER_MATCHES
    assert isinstance(inner, tuple)
    assert inner
    assert all(isinstance(p, re.Pattern) and p.groups == 1 for p in inner)


@pytest.mark.parametrize(
    ("method", "parameters"),
    [
        ("_find", ["self", "index"]),
        ("_extract_match", ["self", "candidate", "offset"]),
        ("_parse_and_verify", ["self", "candidate", "offset"]),
    ],
)
def test_the_matchers_methods_keep_their_signatures(method: str, parameters: list[str]) -> None:
    assert list(inspect.signature(getattr(PhoneNumberMatcher, method)).parameters) == parameters


def test_the_matchers_iteration_calls_find_from_the_search_index() -> None:
    calls: list[int] = []

    class Recording(PhoneNumberMatcher):
        def _find(self, index: int) -> PhoneNumberMatch | None:
            calls.append(index)
            return super()._find(index)

    assert [m.raw_string for m in Recording("call 415-555-2671 now", "US")] == ["415-555-2671"]
    assert calls == [0, 17]


def test_the_matchers_budget_and_parse_and_verify() -> None:
    matcher = PhoneNumberMatcher("call 415-555-2671", "US", max_tries=7, min_candidate_length=3)
    assert (matcher._max_tries, matcher._min_candidate_length) == (7, 3)
    match = matcher._parse_and_verify("415-555-2671", 5)
    assert match is not None
    assert (match.start, match.end) == (5, 17)
    assert matcher._parse_and_verify("415-555-267", 5) is None


def test_the_national_prefix_helpers() -> None:
    choose = phonenumberutil._choose_formatting_pattern_for_number
    first_group_only = phonenumberutil._formatting_rule_has_first_group_only
    assert list(inspect.signature(choose).parameters) == ["available_formats", "national_number"]
    assert list(inspect.signature(first_group_only).parameters) == ["national_prefix_formatting_rule"]
    metadata = PhoneMetadata.metadata_for_region("GB")
    assert metadata is not None
    rule = choose(metadata.number_format, "2079460958")
    assert rule is not None
    assert rule.national_prefix_formatting_rule == "0\\1"
    assert choose(metadata.number_format, "12") is None
    assert first_group_only("(\\1)")
    assert first_group_only(None)
    assert not first_group_only("0\\1")
