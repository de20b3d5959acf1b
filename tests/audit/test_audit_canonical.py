"""Canonical JSON: RFC 8785's number vectors, key order by UTF-16 units, escapes, and what has no form."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.audit.canonical import CanonicalError, canonical_bytes, canonical_json

# RFC 8785 appendix B: IEEE 754 bit patterns and their ECMAScript serialisation.
NUMBERS = {
    "0000000000000000": "0",
    "8000000000000000": "0",
    "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324",
    "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308",
    "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992",
    "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22",
    "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23",
    "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000",
    "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
    "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332",
    "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333",
    "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343",
    "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


@pytest.mark.parametrize(("bits", "expected"), NUMBERS.items())
def test_numbers_follow_ecmascript(bits: str, expected: str) -> None:
    assert canonical_json(struct.unpack(">d", bytes.fromhex(bits))[0]) == expected


def test_keys_sort_by_utf16_code_units_and_nothing_is_padded() -> None:
    value = {
        "\ufb01": 3,
        "\U0001f600": 2,
        "\u20ac": 1,
        "b": [1, 2.5, None, True],
        "a": {"z": False, "y": "x"},
    }
    assert canonical_json(value) == '{"a":{"y":"x","z":false},"b":[1,2.5,null,true],"€":1,"😀":2,"ﬁ":3}'


def test_strings_escape_only_what_json_requires() -> None:
    text = 'quote " backslash \\ tab \t newline \n bell \x07 del \x7f é 😀'
    assert canonical_json(text) == '"quote \\" backslash \\\\ tab \\t newline \\n bell \\u0007 del \x7f é 😀"'


def test_integral_floats_and_integers_write_the_same() -> None:
    assert canonical_json([1.0, 1, -0.0, 100.0, 1e21]) == "[1,1,0,100,1e+21]"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {1: "x"}, b"bytes", object()])
def test_values_without_a_canonical_form_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalError):
        canonical_json(value)


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes("\ud800")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_canonical_json_parses_back_and_is_a_fixed_point(value: Any) -> None:
    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text
