"""Unusual but ordinary text: UI translations in many languages, Unicode tables, encoded blobs."""

from __future__ import annotations

import base64
import gettext
import glob
import hashlib
import json
import random
import unicodedata
from collections.abc import Callable

LOCALES = "/usr/share/locale"
# Unicode blocks whose characters show up in data files, fonts, keyboard maps and i18n tables
BLOCKS = [
    (0x00A0, 0x024F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x0530, 0x058F), (0x0590, 0x05FF),
    (0x0600, 0x06FF), (0x0900, 0x097F), (0x0E00, 0x0E7F), (0x10A0, 0x10FF), (0x1E00, 0x1EFF),
    (0x2000, 0x206F), (0x2190, 0x22FF), (0x2500, 0x257F), (0x3040, 0x30FF), (0x4E00, 0x4FFF),
    (0xAC00, 0xAD00), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
]  # fmt: skip


def catalogues() -> list[tuple[str, list[tuple[str, str]]]]:
    """(locale/domain, [(msgid, msgstr)]) of every gettext catalogue the machine's packages install."""
    out = []
    for path in sorted(glob.glob(f"{LOCALES}/*/LC_MESSAGES/*.mo")):
        try:
            with open(path, "rb") as handle:
                catalogue = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
        except (OSError, UnicodeDecodeError, ValueError, IndexError):  # a catalogue Python cannot parse
            continue
        pairs = [
            (k, v) for k, v in catalogue.items() if isinstance(k, str) and isinstance(v, str) and k and v
        ]
        if len(pairs) >= 20:
            out.append((path[len(LOCALES) + 1 :].replace("/LC_MESSAGES/", "/"), pairs))
    return out


def catalogue_manifest() -> dict[str, object]:
    """training/sources.json's entry for the catalogues: how many, and a sha256 over every pair read."""
    digest = hashlib.sha256()
    found = catalogues()
    for name, pairs in found:
        digest.update(name.encode() + b"\0" + "\0".join(f"{k}\0{v}" for k, v in pairs).encode() + b"\0")
    return {"sha256": digest.hexdigest(), "kind": "exotic", "catalogues": len(found), "side": "train"}


def catalogue_text(rng: random.Random, pairs: list[tuple[str, str]]) -> str:
    """A stretch of one catalogue as a PO file, a JSON i18n resource or the plain translated strings."""
    start = rng.randrange(max(1, len(pairs) - 40))
    run = pairs[start : start + rng.randint(8, 40)]
    form = rng.random()
    if form < 0.35:
        quoted = [(json.dumps(k, ensure_ascii=False), json.dumps(v, ensure_ascii=False)) for k, v in run]
        return "\n\n".join(f"msgid {k}\nmsgstr {v}" for k, v in quoted)
    if form < 0.7:
        keys = {f"{k[:24].strip().lower().replace(' ', '_')}": v for k, v in run}
        return json.dumps(keys, ensure_ascii=False, indent=rng.choice([None, 2]))
    return "\n".join(v for _, v in run)


def _characters(rng: random.Random, count: int) -> list[str]:
    low, high = rng.choice(BLOCKS)
    chars = [chr(c) for c in range(low, high) if unicodedata.name(chr(c), "")]
    return [chars[rng.randrange(len(chars))] for _ in range(count)] if chars else []


def _unicode_table(rng: random.Random) -> str:
    """A code point listing, a character map or a run of symbols as data and test files hold them."""
    chars = _characters(rng, rng.randint(20, 80))
    form = rng.random()
    if form < 0.4:
        return "\n".join(f"U+{ord(c):04X}\t{c}\t{unicodedata.name(c)}" for c in chars)
    if form < 0.7:
        names = {unicodedata.name(c).lower().replace(" ", "_"): c for c in chars}
        return json.dumps(names, ensure_ascii=False)
    return json.dumps({"type": "table", "chars": "".join(chars)}, ensure_ascii=rng.random() < 0.3)


def _blob(rng: random.Random) -> str:
    """Base64, hex dumps and escaped bytes, alone or in a JSON field."""
    data = rng.randbytes(rng.randint(60, 600))
    form = rng.random()
    if form < 0.35:
        encoded = base64.b64encode(data).decode()
        return json.dumps({"name": f"asset-{rng.randint(1, 999)}.bin", "encoding": "base64", "data": encoded})
    if form < 0.7:
        rows = [data[i : i + 16] for i in range(0, len(data), 16)]
        return "\n".join(
            f"{i * 16:08x}: {row.hex(' ')}  {''.join(chr(b) if 32 <= b < 127 else '.' for b in row)}"
            for i, row in enumerate(rows)
        )
    return "".join(f"\\x{b:02x}" for b in data)


def exotic_texts(seed: int, count: int) -> list[str]:
    """``count`` benign texts: half translations, a quarter Unicode tables, a quarter encoded blobs
    (tables and blobs only on a machine without gettext catalogues)."""
    rng = random.Random(seed)
    catalogue = catalogues()

    def translation() -> str:
        return catalogue_text(rng, catalogue[rng.randrange(len(catalogue))][1])

    makers: list[Callable[[], str]] = [translation, translation] if catalogue else []
    makers += [lambda: _unicode_table(rng), lambda: _blob(rng)]
    return [makers[i % len(makers)]() for i in range(count)]
