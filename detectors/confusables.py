"""Confusable characters folded to the ASCII letter or digit they imitate (after NFKC), from Unicode's list.

    .venv/bin/python -m detectors.confusables > /tmp/table.txt   # prints FOLDS as regenerated

FOLDS is generated from the confusables data that the `confusable-homoglyphs` package (a dev
dependency) ships, itself made from Unicode's confusables.txt: each non-ASCII character that NFKC
leaves as it is and that imitates one ASCII letter or digit, with that letter or digit (an upper-case
character folds to an upper-case letter where it can, a lower-case one to a lower-case letter).
tests/detectors/test_detector_textforms.py checks the table against the package.
"""

from __future__ import annotations

import json
import os
import unicodedata

_TARGETS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

# Pairs of (confusable, ASCII character), concatenated.
FOLDS = (
    "\u00d7x\u0131i\u0184b\u018dg\u0196I\u01a6R\u01a72\u01b73"
    "\u01bc5\u01bds\u01c0l\u021c3\u02228\u02238\u0251a\u0261g"
    "\u0263y\u0269i\u026ai\u026fw\u028bu\u028fy\u037fJ\u0391A"
    "\u0392B\u0395E\u0396Z\u0397H\u0399I\u039aK\u039cM\u039dN"
    "\u039fO\u03a1P\u03a4T\u03a5Y\u03a7X\u03b1a\u03b3y\u03b9i"
    "\u03bdv\u03bfo\u03c1p\u03c3o\u03c5u\u03dcF\u03e82\u03f3j"
    "\u03faM\u0405S\u0406I\u0408J\u0410A\u0412B\u0415E\u04173"
    "\u041aK\u041cM\u041dH\u041eO\u0420P\u0421C\u0422T\u0423Y"
    "\u0425X\u042cb\u0430a\u04316\u0433r\u0435e\u043eo\u0440p"
    "\u0441c\u0443y\u0445x\u0455s\u0456i\u0458j\u0461w\u0474V"
    "\u0475v\u04aeY\u04afy\u04bbh\u04bde\u04c0I\u04cfi\u04e03"
    "\u0501d\u050cG\u051bq\u051cW\u051dw\u054dU\u054fS\u0555O"
    "\u0561w\u0563q\u0566q\u0570h\u0578n\u057cn\u057du\u0581g"
    "\u0584f\u0585o\u06f1l\u06f5o\u06f7V\u0966o\u09e6O\u09ea8"
    "\u09ed9\u0a66o\u0a679\u0a6a8\u0ae6o\u0b038\u0b20O\u0b66O"
    "\u0b689\u0be6o\u0c02o\u0c66o\u0c82o\u0ce6o\u0d02o\u0d20o"
    "\u0d66o\u0d6d9\u0d82o\u0e50o\u0ed0o\u101do\u1040o\u10e7y"
    "\u10ffo\u1200U\u12d0O\u13a0D\u13a1R\u13a2T\u13a5i\u13a9Y"
    "\u13aaA\u13abJ\u13acE\u13b3W\u13b7M\u13bbH\u13bdY\u13c0G"
    "\u13c2h\u13c3Z\u13ce4\u13cfb\u13d2R\u13d4W\u13d5S\u13d9V"
    "\u13daS\u13deL\u13dfC\u13e2P\u13e6K\u13e7d\u13ee6\u13f3G"
    "\u13f4B\u142fV\u144cU\u146dP\u146fd\u1472b\u148dJ\u14aaL"
    "\u14bf2\u1541x\u157cH\u157dx\u1587R\u15afb\u15b4F\u15c5A"
    "\u15deD\u15eaD\u15f0M\u15f7B\u166dX\u166ex\u16b7X\u16c1l"
    "\u16d5K\u16d6M\u1d04c\u1d0fo\u1d11o\u1d1cu\u1d20v\u1d21w"
    "\u1d22z\u1d26r\u1d83g\u1d8cy\u1e9df\u1effy\u212ee\u2223l"
    "\u2228v\u222aU\u22a4T\u22c1v\u22c3U\u22ffE\u2373i\u2374p"
    "\u237aa\u23fdl\u2573X\u27d9T\u292bx\u292cx\u2a2fx\u2c85r"
    "\u2c8eH\u2c92I\u2c94K\u2c98M\u2c9aN\u2c9eO\u2c9fo\u2ca2P"
    "\u2ca3p\u2ca4C\u2ca5c\u2ca6T\u2ca8Y\u2cacX\u2cca9\u2ccc3"
    "\u2cd0L\u2cd26\u2d38V\u2d39E\u2d4fl\u2d54O\u2d55Q\u2d5dX"
    "\u3007O\ua4d0B\ua4d1P\ua4d2d\ua4d3D\ua4d4T\ua4d6G\ua4d7K"
    "\ua4d9J\ua4daC\ua4dcZ\ua4ddF\ua4dfM\ua4e0N\ua4e1L\ua4e2S"
    "\ua4e3R\ua4e6V\ua4e7H\ua4eaW\ua4ebX\ua4ecY\ua4eeA\ua4f0E"
    "\ua4f2l\ua4f3O\ua4f4U\ua6442\ua647i\ua6dfV\ua6ef2\ua731s"
    "\ua75a2\ua76a3\ua76e9\ua798F\ua799f\ua79fu\ua7ab3\ua7b2J"
    "\ua7b3X\ua7b4B\uab32e\uab35f\uab3do\uab47r\uab48r\uab4eu"
    "\uab52u\uab5ay\uab75i\uab81r\uab83w\uab93z\uaba9v\uabaas"
    "\uabafc\U00010282B\U00010286E\U00010287F\U0001028al\U00010290X\U00010292O\U00010295P"
    "\U00010296S\U00010297T\U000102a0A\U000102a1B\U000102a2C\U000102a5F\U000102abO\U000102b0M"
    "\U000102b1T\U000102b2Y\U000102b4X\U000102cfH\U000102f5Z\U00010301B\U00010302C\U00010309l"
    "\U00010311M\U00010315T\U00010317X\U0001031a8\U00010320l\U00010322X\U00010404O\U00010415C"
    "\U0001041bL\U00010420S\U0001042co\U0001043dc\U00010448s\U000104b4R\U000104c2O\U000104ceU"
    "\U000104d27\U000104eao\U000104f6u\U00010513N\U00010516O\U00010518K\U0001051cC\U0001051dV"
    "\U00010525F\U00010526L\U00010527X\U000114d0O\U00011706v\U0001170aw\U0001170ew\U0001170fw"
    "\U000118a0V\U000118a2F\U000118a3L\U000118a4Y\U000118a6E\U000118a9Z\U000118ac9\U000118aeE"
    "\U000118af4\U000118b2L\U000118b5O\U000118b8U\U000118bb5\U000118bcT\U000118c0v\U000118c1s"
    "\U000118c2F\U000118c3i\U000118c4z\U000118c67\U000118c8o\U000118ca3\U000118cc9\U000118d56"
    "\U000118d69\U000118d7o\U000118d8u\U000118dcy\U000118e0O\U000118e5Z\U000118e6W\U000118e9C"
    "\U000118ecX\U000118efW\U000118f2C\U00016f08V\U00016f0aT\U00016f16L\U00016f28l\U00016f35R"
    "\U00016f3aS\U00016f3b3\U00016f40A\U00016f42U\U00016f43Y\U0001d2063\U0001d20dV\U0001d2127"
    "\U0001d213F\U0001d216R\U0001d22aL\U0001f74cC\U0001f768T"
)


def fold_table() -> dict[int, str]:
    """FOLDS for str.translate."""
    return {ord(FOLDS[i]): FOLDS[i + 1] for i in range(0, len(FOLDS), 2)}


def _rank(char: str, target: str) -> tuple[int, int]:
    if char.isupper():
        order = (target.isupper(), target.isdigit())
    elif char.islower():
        order = (target.islower(), target.isdigit())
    else:
        order = (target.isdigit(), target.islower())
    return (-int(order[0]), -int(order[1]))


def _choose(char: str, targets: list[str]) -> str:
    """The target that looks most like ``char``; Unicode folds I to l, but an upper-case char reads as I."""
    target = min(targets, key=lambda t: _rank(char, t))
    return "I" if target == "l" and char.isupper() else target


def generate() -> str:
    """FOLDS, computed again from the confusable-homoglyphs package's data."""
    import confusable_homoglyphs  # type: ignore[import-untyped]  # noqa: PLC0415 (dev dependency)

    path = os.path.join(os.path.dirname(confusable_homoglyphs.__file__), "confusables.json")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    choices: dict[str, list[str]] = {}
    for target in _TARGETS:
        for entry in data.get(target, []):
            char = entry["c"]
            if len(char) == 1 and not char.isascii() and unicodedata.normalize("NFKC", char) == char:
                choices.setdefault(char, []).append(target)
    pairs = sorted((char, _choose(char, targets)) for char, targets in choices.items())
    return "".join(char + target for char, target in pairs)


def _escape(char: str) -> str:
    return char if char.isascii() else f"\\U{ord(char):08x}" if ord(char) > 0xFFFF else f"\\u{ord(char):04x}"


def literal(table: str, pairs_per_line: int = 8) -> str:
    """The source text of FOLDS' string: escaped, eight pairs a line."""
    step = 2 * pairs_per_line
    chunks = ["".join(_escape(c) for c in table[i : i + step]) for i in range(0, len(table), step)]
    return "\n".join(f'    "{chunk}"' for chunk in chunks)


if __name__ == "__main__":
    print(literal(generate()))
