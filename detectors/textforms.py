"""Other forms of a text: hidden characters, encoded blocks decoded, confusables folded (shared helpers)."""

from __future__ import annotations

import base64
import binascii
import functools
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import regex

from detectors.confusables import fold_table

MAX_DECODE_ROUNDS = 3  # base64 inside base64 inside hex, at most
MIN_DECODED_CHARS = 4
MIN_PRINTABLE = 0.95

# Hidden characters

TAG_FIRST, TAG_LAST = 0xE0000, 0xE007F
CANCEL_TAG = 0xE007F
BLACK_FLAG = 0x1F3F4  # emoji flags of regions (England, Scotland, Wales) are tag sequences after it
ZWJ, ZWNJ = 0x200D, 0x200C
VS15, VS16 = 0xFE0E, 0xFE0F
# Embedding, override and isolate controls ("Trojan Source"); LRM, RLM and ALM are ordinary in RTL text.
BIDI_CONTROLS = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
BIDI_MARKS = frozenset({0x200E, 0x200F, 0x061C})  # LRM, RLM, ALM
BOM = 0xFEFF


def is_variation_selector(cp: int) -> bool:
    return 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


@functools.cache
def _invisible() -> frozenset[int]:
    """Code points that render as nothing: format characters (less bidi controls and tags), variation
    selectors, the combining grapheme joiner and the Hangul fillers."""
    found = {cp for cp in range(0x30000) if unicodedata.category(chr(cp)) == "Cf"}
    found |= {0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800}
    found |= set(range(0xFE00, 0xFE10)) | set(range(0xE0100, 0xE01F0))
    return frozenset(found - BIDI_CONTROLS - BIDI_MARKS)


def is_invisible(cp: int) -> bool:
    return cp in _invisible()


def _pictographic(char: str) -> bool:
    cp = ord(char)
    return cp >= 0x1F000 or 0x2600 <= cp <= 0x27BF or 0x2300 <= cp <= 0x23FF or 0x1F1E6 <= cp <= 0x1F1FF


def benign_invisible(text: str, i: int) -> bool:
    """Invisible characters that ordinary text uses: a joiner inside an emoji sequence or between
    letters of a script that needs it, one emoji or text presentation selector after a character,
    a byte-order mark that starts the text."""
    cp = ord(text[i])
    if cp == BOM:
        return i == 0
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if cp in (VS15, VS16):
        return bool(before) and not is_variation_selector(ord(before)) and not is_invisible(ord(before))
    if cp == ZWJ and before and after and (_pictographic(before) or ord(before) in (VS16,)):
        return _pictographic(after)
    if cp in (ZWJ, ZWNJ) and before and after:
        return not before.isascii() and not after.isascii() and before.isalpha() and after.isalpha()
    return False


@dataclass(frozen=True, slots=True)
class Hidden:
    """A run of hidden characters: its span, its type, and what it says when it says something."""

    type: str  # INVISIBLE_CHARACTER | BIDI_CONTROL | TAG_CHARACTERS
    start: int
    end: int
    decoded: str = ""  # the ASCII that tag characters spell, or the bytes variation selectors carry


@functools.cache
def _hidden_class() -> regex.Pattern[str]:
    """The characters _kind may report (tag characters, bidi controls, invisible characters), as a
    class of ranges: a search skips the others at C speed."""
    ranges: list[list[int]] = []
    for cp in sorted(_invisible() | BIDI_CONTROLS | frozenset(range(TAG_FIRST, TAG_LAST + 1))):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return regex.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + "]")


def hidden_runs(text: str) -> Iterator[Hidden]:
    """Every run of invisible characters, bidi controls or tag characters, in order."""
    candidates = _hidden_class()
    i = 0
    while (found := candidates.search(text, i)) is not None:
        i = found.start()
        kind = _kind(text, i)
        if kind is None:
            i += 1
            continue
        end = i + 1
        while end < len(text) and _kind(text, end) == kind:
            end += 1
        run = Hidden(kind, i, end, _decode_run(kind, text[i:end]))
        if not _emoji_tag_sequence(text, run):
            yield run
        i = end


def _kind(text: str, i: int) -> str | None:
    cp = ord(text[i])
    if TAG_FIRST <= cp <= TAG_LAST:
        return "TAG_CHARACTERS"
    if cp in BIDI_CONTROLS:
        return "BIDI_CONTROL"
    if is_invisible(cp) and not benign_invisible(text, i):
        return "INVISIBLE_CHARACTER"
    return None


def _decode_run(kind: str, run: str) -> str:
    if kind == "TAG_CHARACTERS":
        return "".join(chr(ord(c) - TAG_FIRST) for c in run if 0x20 <= ord(c) - TAG_FIRST <= 0x7E)
    if kind == "INVISIBLE_CHARACTER" and len(run) > 1 and all(is_variation_selector(ord(c)) for c in run):
        data = bytes(_selector_byte(ord(c)) for c in run)
        text = data.decode("utf-8", errors="replace")
        return text if readable(text) else ""
    return ""


def _selector_byte(cp: int) -> int:
    """Variation selectors as bytes, the way "emoji smuggling" packs data into them."""
    return cp - 0xFE00 if cp <= 0xFE0F else cp - 0xE0100 + 16


def _emoji_tag_sequence(text: str, run: Hidden) -> bool:
    """A subdivision flag (black flag, tag letters, cancel tag) is an emoji, not hidden text."""
    return (
        run.type == "TAG_CHARACTERS"
        and run.start > 0
        and ord(text[run.start - 1]) == BLACK_FLAG
        and ord(text[run.end - 1]) == CANCEL_TAG
        and run.end - run.start <= 8
    )


def readable(text: str) -> bool:
    """Text a person could read: long enough, and almost all printable."""
    if len(text) < MIN_DECODED_CHARS:
        return False
    printable = sum(c.isprintable() or c in "\n\r\t" for c in text)
    return printable / len(text) >= MIN_PRINTABLE and any(c.isalpha() for c in text)


# Encoded blocks

_BASE64_RUN = regex.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{8,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_ESCAPES = regex.compile(r"(?:\\x[0-9A-Fa-f]{2}){4,}")
_HEX = regex.compile(r"[0-9A-Fa-f]+")


@dataclass(frozen=True, slots=True)
class Encoded:
    """A block of the text that decodes to readable text."""

    type: str  # BASE64_TEXT | HEX_TEXT
    start: int
    end: int
    decoded: str


def encoded_blocks(text: str, min_length: int = 16) -> Iterator[Encoded]:
    """Base64 (standard or URL-safe) and hex blocks of at least ``min_length`` characters that decode
    to readable UTF-8 text, in order."""
    found = [*_escaped_hex(text, min_length), *_runs(text, min_length)]
    yield from sorted(found, key=lambda e: e.start)


def _escaped_hex(text: str, min_length: int) -> Iterator[Encoded]:
    for m in _HEX_ESCAPES.finditer(text):
        if m.end() - m.start() >= min_length:
            decoded = _hex_text(m[0].replace("\\x", ""))
            if decoded is not None:
                yield Encoded("HEX_TEXT", m.start(), m.end(), decoded)


def _runs(text: str, min_length: int) -> Iterator[Encoded]:
    for m in _BASE64_RUN.finditer(text):
        block = m[0]
        if len(block) < min_length:
            continue
        if _HEX.fullmatch(block) and len(block) % 2 == 0:
            decoded = _hex_text(block)
            if decoded is not None:
                yield Encoded("HEX_TEXT", m.start(), m.end(), decoded)
                continue
        decoded = _base64_text(block)
        if decoded is not None:
            yield Encoded("BASE64_TEXT", m.start(), m.end(), decoded)


def _hex_text(block: str) -> str | None:
    try:
        return _text(bytes.fromhex(block))
    except ValueError:
        return None


def _base64_text(block: str) -> str | None:
    body = block.rstrip("=")
    if len(body) % 4 == 1:
        return None
    altchars = b"-_" if ("-" in body or "_" in body) else b"+/"
    if altchars == b"-_" and ("+" in body or "/" in body):
        return None
    try:
        data = base64.b64decode(body + "=" * (-len(body) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _text(data)


def _text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if readable(text) else None


def decoded(text: str, min_length: int = 16) -> str:
    """``text`` with each encoded block replaced by what it decodes to, up to three layers deep."""
    for _ in range(MAX_DECODE_ROUNDS):
        blocks = list(encoded_blocks(text, min_length))
        if not blocks:
            break
        text = _replace(text, blocks)
    return text


def _replace(text: str, blocks: list[Encoded]) -> str:
    out, cursor = [], 0
    for block in blocks:
        if block.start < cursor:
            continue
        out += [text[cursor : block.start], block.decoded]
        cursor = block.end
    out.append(text[cursor:])
    return "".join(out)


# Normalisation


@functools.cache
def _normal_table() -> dict[int, str | None]:
    """Hidden characters removed, confusables folded: for str.translate after NFKC."""
    table: dict[int, str | None] = dict.fromkeys(_invisible() | BIDI_CONTROLS | BIDI_MARKS | {BOM})
    table.update(dict.fromkeys(range(TAG_FIRST, TAG_LAST + 1)))
    table.update(fold_table())
    return table


def normalized(text: str) -> str:
    """NFKC, then every hidden character removed and every confusable folded to the ASCII it imitates.

    Fullwidth letters, a zero-width space inside a word and Cyrillic look-alikes all read as the
    plain ASCII word. Case is kept.
    """
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_normal_table())
