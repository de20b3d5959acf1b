"""Generates benchmarks/data/pii_corpus.jsonl: English texts of about 500 characters, five PII items each.

    .venv/bin/python -m benchmarks.pii_corpus            # rewrites the committed corpus (fixed seed)
    .venv/bin/python -m benchmarks.pii_corpus --count 50 --out /tmp/small.jsonl

Faker (the `bench` extra) makes the values: names, emails, phone numbers in several countries'
formats, Luhn-valid card numbers, SSNs, IBANs, IPv4 addresses, URLs and dates. Each text is a short
support-desk style message whose sentences carry the items, padded with Faker's English filler
sentences to about 500 characters. Every line is JSON: {"text": ..., "items": [[type, value], ...]}
where each value occurs in the text; the types are what the generator put in, not what any
recognizer is expected to find (names and addresses need NER; some phone formats fail validation).
"""

from __future__ import annotations

import argparse
import json
import os
import random
from collections.abc import Callable
from typing import Any

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "pii_corpus.jsonl")
SEED = 20_240_501
TARGET_CHARS = 500
ITEMS_PER_TEXT = 5
PHONE_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "en_IN", "en_CA", "pt_BR", "he_IL")

# (type, sentence template); {v} is the value
TEMPLATES: dict[str, tuple[str, ...]] = {
    "EMAIL_ADDRESS": (
        "You can email me at {v}.",
        "Please send the invoice to {v} today.",
        "My login is {v}.",
    ),
    "PHONE_NUMBER": ("Call me on {v} after six.", "My mobile number is {v}.", "The office line is {v}."),
    "CREDIT_CARD": ("Charge it to my card {v}.", "The card number is {v}, expiring next year."),
    "US_SSN": ("My social security number is {v}.", "SSN on file: {v}."),
    "IBAN_CODE": ("Wire the refund to IBAN {v}.", "Our bank account is {v}."),
    "IP_ADDRESS": ("The login came from {v} last night.", "Our server address is {v}."),
    "URL": ("The order page is {v} if that helps.", "See {v} for the details."),
    "DATE_TIME": ("I was born on {v}.", "The order was placed on {v}."),
    "PERSON": ("This is {v} writing.", "Please ask {v} to call back."),
}


def _values(fake: Any, phones: dict[str, Any]) -> dict[str, Callable[[], str]]:
    def phone() -> str:
        return str(phones[random.choice(PHONE_LOCALES)].phone_number())

    return {
        "EMAIL_ADDRESS": fake.email,
        "PHONE_NUMBER": phone,
        "CREDIT_CARD": lambda: _grouped(fake.credit_card_number()),
        "US_SSN": fake.ssn,
        "IBAN_CODE": fake.iban,
        "IP_ADDRESS": fake.ipv4_public,
        "URL": lambda: fake.url() + fake.uri_path(),
        "DATE_TIME": lambda: fake.date(pattern=random.choice(("%Y-%m-%d", "%m/%d/%Y", "%d %B %Y"))),
        "PERSON": fake.name,
    }


def _grouped(number: str) -> str:
    """Card numbers as people write them: plain, or in groups of four by spaces or dashes."""
    separator = random.choice(("", " ", "-"))
    return separator.join(number[i : i + 4] for i in range(0, len(number), 4))


def make_text(fake: Any, values: dict[str, Callable[[], str]]) -> dict[str, Any]:
    kinds = random.sample(sorted(TEMPLATES), ITEMS_PER_TEXT)
    items = [(kind, values[kind]()) for kind in kinds]
    sentences = [random.choice(TEMPLATES[kind]).format(v=value) for kind, value in items]
    while sum(len(s) + 1 for s in sentences) < TARGET_CHARS - 40:
        sentences.insert(random.randrange(len(sentences) + 1), fake.sentence(nb_words=random.randint(6, 14)))
    return {"text": " ".join(sentences), "items": items}


def generate(count: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``count`` texts; the same seed gives the same texts."""
    from faker import Faker  # noqa: PLC0415 (the bench extra; only this generator needs it)

    random.seed(seed)
    Faker.seed(seed)
    fake = Faker("en_US")
    phones = {locale: Faker(locale) for locale in PHONE_LOCALES}
    values = _values(fake, phones)
    return [make_text(fake, values) for _ in range(count)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", default=DATA)
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        for record in generate(args.count, args.seed):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
