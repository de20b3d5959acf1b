"""The unusual-but-benign training texts: every form, the same for a seed, catalogues optional."""

from __future__ import annotations

import json
import random

import pytest

from training import exotic


def test_a_seed_gives_the_same_texts_and_every_form_appears() -> None:
    texts = exotic.exotic_texts(7, 40)
    assert texts == exotic.exotic_texts(7, 40)
    assert len(texts) == 40 and all(texts)
    assert any(t.startswith("U+") or '"chars"' in t for t in texts)  # Unicode tables
    assert any(t.startswith("00000000: ") or '"base64"' in t or t.startswith("\\x") for t in texts)


def test_without_catalogues_only_tables_and_blobs_are_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exotic, "LOCALES", "/nonexistent")
    texts = exotic.exotic_texts(3, 8)
    assert len(texts) == 8
    assert not any(t.startswith("msgid ") for t in texts)


def test_a_catalogue_becomes_po_json_or_plain_strings() -> None:
    pairs = [(f"Message {i}", f"Nachricht {i}") for i in range(50)]
    texts = [exotic.catalogue_text(random.Random(seed), pairs) for seed in range(40)]
    assert any(t.startswith('msgid "Message') and 'msgstr "Nachricht' in t for t in texts)
    assert any(t.startswith("Nachricht") for t in texts)
    resources = [json.loads(t) for t in texts if t.startswith("{")]
    assert resources and all(v.startswith("Nachricht") for r in resources for v in r.values())
