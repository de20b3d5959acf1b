"""The phone matcher's filter: whether a candidate's digits can parse into a valid number of a region."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from phonenumbers import NumberFormat, PhoneMetadata, region_codes_for_country_code

# Private names of phonenumbers, with no public equivalent: the matcher (leniency VALID) asks for a
# national prefix where the number's format wants one (phonenumbermatcher's private
# _is_national_prefix_present_if_required), and only these two helpers of it tell when a format wants
# one; NationalNumbers.prefix_missing repeats that check without parsing.
# tests/detectors/test_detector_pii_phonenumbers.py fails when they change.
from phonenumbers.phonenumberutil import (
    _choose_formatting_pattern_for_number,
    _formatting_rule_has_first_group_only,
)

_MIN_NSN, _MAX_NSN = 2, 17  # parse() refuses national numbers shorter or longer

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
class NationalNumbers:
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
    formats: list[NumberFormat]  # the main region's number formats
    lengths: frozenset[int]
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, region: str) -> NationalNumbers:
        metadata: Any = PhoneMetadata.metadata_for_region(region)
        code = metadata.country_code
        codes = region_codes_for_country_code(code)
        regions: list[Any] = [PhoneMetadata.metadata_for_region(r) for r in codes]
        main: Any = PhoneMetadata.metadata_for_region(codes[0])
        return cls(
            re.compile(metadata.international_prefix or "(?!)"),
            str(code),
            _Prefix.of(metadata),
            _Prefix.of(metadata if codes[0] == region else main),
            _Prefix.of(main),
            list(main.number_format),
            _lengths(regions),
            re.compile("|".join(_valid_pattern(m) for m in regions) or "(?!)"),
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
        if not any(self._valid_national(n) for n in nationals):
            return False
        return not self.prefix_missing(digits)

    def _valid_national(self, national: str) -> bool:
        return (
            _MIN_NSN <= len(national) <= _MAX_NSN
            and len(national) in self.lengths
            and self.pattern.fullmatch(national) is not None
        )

    def prefix_missing(self, digits: str) -> bool:
        """The digits, no code or prefix removed, are a national number whose format wants a prefix."""
        if digits.startswith(self.code) or self.own.matches(digits) or self.main.matches(digits):
            return False
        rule = _choose_formatting_pattern_for_number(self.formats, digits)
        return (
            rule is not None
            and bool(rule.national_prefix_formatting_rule)
            and not rule.national_prefix_optional_when_formatting
            and not _formatting_rule_has_first_group_only(rule.national_prefix_formatting_rule)
        )


def _lengths(regions: list[Any]) -> frozenset[int]:
    """The possible lengths of national numbers in these regions (any parse() accepts if one has none)."""
    descs = [m.general_desc for m in regions]
    if not all(d.possible_length for d in descs):
        return frozenset(range(_MIN_NSN, _MAX_NSN + 1))
    return frozenset(n for d in descs for n in d.possible_length)


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
def national_numbers(region: str) -> NationalNumbers:
    """The filter for ``region``, built once."""
    return NationalNumbers.of(region)
