"""Redaction: placeholders and keyed pseudonyms, merged overlaps, offsets in characters of any script."""

from __future__ import annotations

from detectors.base import Finding
from engine.runtime.redaction import Pseudonymizer, redact


def span(text: str, value: str, kind: str, nth: int = 0) -> Finding:
    start = -1
    for _ in range(nth + 1):
        start = text.index(value, start + 1)
    return Finding(kind, start, start + len(value))


def test_offsets_are_characters_around_emoji_and_rtl_text() -> None:
    text = "👋🏽 שלום, הכרטיס 4111 1111 1111 1111 ✅ ואימייל dana@example.org 🙏"
    found = [
        span(text, "4111 1111 1111 1111", "CREDIT_CARD"),
        span(text, "dana@example.org", "EMAIL_ADDRESS"),
    ]
    assert redact(text, found) == "👋🏽 שלום, הכרטיס <CREDIT_CARD> ✅ ואימייל <EMAIL_ADDRESS> 🙏"


def test_an_email_and_the_url_inside_it_merge_as_the_email() -> None:
    text = "mail john.smith@example.com today"
    found = [
        span(text, "john.sm", "URL"),
        span(text, "example.com", "URL"),
        span(text, "john.smith@example.com", "EMAIL_ADDRESS"),
    ]
    assert redact(text, found) == "mail <EMAIL_ADDRESS> today"


def test_pseudonyms_are_stable_per_value_and_key() -> None:
    text = "ann@example.com wrote to bob@example.com and ann@example.com"
    found = [span(text, "ann@example.com", "EMAIL_ADDRESS", n) for n in (0, 1)]
    found.append(span(text, "bob@example.com", "EMAIL_ADDRESS"))
    pseudonym = Pseudonymizer(b"k1")
    out = redact(text, found, pseudonym, keyed=found)
    ann, bob = pseudonym("EMAIL_ADDRESS", "ann@example.com"), pseudonym("EMAIL_ADDRESS", "bob@example.com")
    assert out == f"{ann} wrote to {bob} and {ann}"
    assert ann != bob and ann.startswith("<EMAIL_ADDRESS_") and len(ann) == len("<EMAIL_ADDRESS_>") + 8
    assert Pseudonymizer(b"k2")("EMAIL_ADDRESS", "ann@example.com") != ann
    assert Pseudonymizer(b"k1")("PERSON", "ann@example.com") != ann  # the type is part of it


def test_a_span_is_pseudonymized_only_if_all_its_findings_are_keyed() -> None:
    text = "card 4111 1111 1111 1111 end"
    card, tail = span(text, "4111 1111 1111 1111", "CREDIT_CARD"), span(text, "1111 1111 end", "OTHER")
    assert redact(text, [card, tail], Pseudonymizer(b"k"), keyed=[card]) == "card <CREDIT_CARD>"
