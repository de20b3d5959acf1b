"""PhoneRecognizer.analyze: phonenumbers' PhoneNumberMatcher per region, sharing its work across regions."""

from __future__ import annotations

from typing import Any

from phonenumbers import Leniency, PhoneNumberMatch, PhoneNumberMatcher

from detectors.base import check_deadline
from detectors.pii.candidates import Attempt, Candidates
from detectors.pii.findings import Raw, remove_duplicates
from detectors.pii.nationals import NationalNumbers, national_numbers

# Private names of phonenumbers: _Matcher overrides PhoneNumberMatcher's private _find and
# _extract_match (which its public iteration calls), and uses its private _parse_and_verify,
# _max_tries and _min_candidate_length. The public PhoneNumberMatcher finds the same numbers, but
# finds the candidates and parses each of them, and their parts, once for each of the recognizer's
# eight regions, hopeless pairs included: that is where presidio spends about half its time
# (benchmarks/PII.md). tests/detectors/test_detector_pii_phonenumbers.py fails when these names
# change, and test_phone_shortcuts_find_what_phonenumbers_finds compares with the public matcher.


class _Matcher(PhoneNumberMatcher):
    """PhoneNumberMatcher with the region-independent work shared across regions, and without parsing
    what cannot be a valid number in its region (NationalNumbers). Finds exactly what it finds."""

    def __init__(
        self,
        candidates: Candidates,
        international: dict[tuple[str, int], PhoneNumberMatch | None],
        region: str,
        leniency: int,
    ) -> None:
        super().__init__(candidates.text, region, leniency=leniency)
        self._candidates = candidates
        self._international = international  # parses of "+..." attempts: the region plays no part
        # the shortcut assumes what leniency VALID (presidio's) and the stricter ones check
        self._national: NationalNumbers | None = (
            national_numbers(region) if leniency >= Leniency.VALID else None
        )

    def _find(self, index: int) -> PhoneNumberMatch | None:
        found = self._candidates.search(index)
        while self._max_tries > 0 and found is not None:
            check_deadline()  # a text of digits holds a candidate every few characters
            start, candidate = found
            if len(candidate) >= self._min_candidate_length:
                match = self._extract_match(candidate, start)
                if match is not None:
                    return match
                self._max_tries -= 1
            found = self._candidates.search(start + len(candidate))
        return None

    def _extract_match(self, candidate: str, offset: int) -> PhoneNumberMatch | None:
        entry = self._candidates.candidate(candidate, offset)
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

    def _try(self, attempt: Attempt) -> PhoneNumberMatch | None:
        if attempt.plus:
            key = (attempt.text, attempt.offset)
            if key not in self._international:
                self._international[key] = self._parse_and_verify(attempt.text, attempt.offset)
            return self._international[key]
        national = self._national
        if national is not None and attempt.digits is not None and not national.possible(attempt.digits):
            return None
        return self._parse_and_verify(attempt.text, attempt.offset)


class PhoneRunner:
    """PhoneRecognizer.analyze: the union over its regions, duplicates removed."""

    def __init__(self, recognizer: Any, index: int) -> None:
        self.regions = tuple(recognizer.supported_regions)
        self.leniency: int = recognizer.leniency
        self.type = recognizer.supported_entities[0]
        self.score = recognizer.SCORE
        self.index = index

    def run(self, text: str, timeout_s: float) -> list[Raw]:
        """Every phone number in ``text`` (phonenumbers has no timeout to keep: ``timeout_s`` is unused)."""
        candidates = Candidates(text)
        international: dict[tuple[str, int], PhoneNumberMatch | None] = {}
        found = [
            Raw(self.type, m.start, m.end, self.score, self.index)
            for region in self.regions
            for m in _Matcher(candidates, international, region, self.leniency)
        ]
        return remove_duplicates(found)
