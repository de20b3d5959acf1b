"""Canonical JSON in the style of RFC 8785 (JCS): the exact bytes that audit hashes and signatures cover.

Rules, precisely:

- Objects: members sorted by key, compared as UTF-16 code units (RFC 8785 section 3.2.3); no whitespace
  anywhere; keys must be strings.
- Strings: ``"`` and ``\\`` escaped; U+0008, U+0009, U+000A, U+000C, U+000D as ``\\b \\t \\n \\f \\r``;
  every other control character below U+0020 as ``\\u00xx`` (lower-case hex); everything else is
  written as itself. The output is UTF-8; a lone surrogate is an error.
- Floats: ECMAScript ``Number.prototype.toString`` (RFC 8785 section 3.2.2.3): the shortest digits that
  round-trip, plain notation for exponents from -7 to 20, else ``d.ddde+N`` / ``d.ddde-N``; ``-0`` is
  ``0``, an integral float has no fraction (``1.0`` is ``1``). NaN and the infinities are errors.
- Integers: their exact decimal digits. (RFC 8785 first converts to an IEEE double; for the integers
  that audit records hold, all below 2**53, the two agree.)
- ``true``, ``false``, ``null``; lists and tuples are arrays.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

_encode_string = json.encoder.encode_basestring  # the C escaper (non-ASCII kept as is)


class CanonicalError(ValueError):
    """A value has no canonical JSON form (NaN, infinity, a non-string key, an unknown type)."""


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value``; ``.encode()`` it for the bytes to hash or sign."""
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def canonical_bytes(value: Any) -> bytes:
    """The canonical JSON of ``value`` as UTF-8 bytes."""
    try:
        return canonical_json(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"string is not valid Unicode: {exc.reason}") from None


def encode_string(text: str) -> str:
    """A string in canonical JSON, quotes included."""
    encoded: str = _encode_string(text)
    return encoded


def encode_number(number: float) -> str:
    """A number as ECMAScript writes it (integers: exact digits)."""
    if isinstance(number, int):
        return str(number)
    if not math.isfinite(number):
        raise CanonicalError(f"{number!r} has no JSON form")
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    digits, exponent = _shortest(abs(number))
    return sign + _es_layout(digits, exponent)


def _shortest(number: float) -> tuple[str, int]:
    """The shortest round-trip digits of ``number`` (no trailing zeros) and n: value = 0.digits * 10**n."""
    parts = Decimal(repr(number)).normalize().as_tuple()
    digits = "".join(map(str, parts.digits))
    assert isinstance(parts.exponent, int)
    return digits, len(digits) + parts.exponent


def _es_layout(digits: str, n: int) -> str:
    """ECMAScript Number::toString, step 6 onwards, for k = len(digits) digits and decimal point at n."""
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return f"0.{'0' * -n}{digits}"
    exponent = f"e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return digits + exponent if k == 1 else f"{digits[0]}.{digits[1:]}{exponent}"


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is None or isinstance(value, bool):
        out.append("null" if value is None else "true" if value else "false")
    elif isinstance(value, int | float):
        out.append(encode_number(value))
    elif isinstance(value, Mapping):
        _write_object(value, out)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise CanonicalError(f"{type(value).__name__} has no JSON form")


def _write_object(value: Mapping[Any, Any], out: list[str]) -> None:
    if not all(isinstance(key, str) for key in value):
        raise CanonicalError("object keys must be strings")
    out.append("{")
    for index, key in enumerate(sorted(value, key=_utf16_key)):
        if index:
            out.append(",")
        out.append(_encode_string(key))
        out.append(":")
        _write(value[key], out)
    out.append("}")


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")
