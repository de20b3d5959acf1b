"""Fuzzing the request decoder: any CheckRequest or bytes give a Request or an error naming the field."""

from __future__ import annotations

import pytest
from fuzz_helpers import fuzz_settings, fuzz_timeout
from hypothesis import event, given, note
from hypothesis import strategies as st
from request_fuzz import (
    assert_bytes_decode_or_are_refused,
    assert_decodes_or_names_field,
    check_requests,
    flip,
    limits,
)

from engine.config import Limits
from engine.protocol.wire import pb

pytestmark = pytest.mark.timeout(fuzz_timeout())
edits = st.lists(st.tuples(st.integers(0, 4_000), st.integers(0, 255)), min_size=1, max_size=8)


@fuzz_settings()
@given(check_requests(), limits)
def test_any_check_request_decodes_or_names_a_field(msg: pb.CheckRequest, bounds: Limits) -> None:
    event("decoded" if assert_decodes_or_names_field(msg, bounds) else "refused")


@fuzz_settings()
@given(st.binary(max_size=300), limits)
def test_any_bytes_decode_or_are_refused(data: bytes, bounds: Limits) -> None:
    note(f"to keep it, write these bytes to tests/fuzz/corpus/NAME.bin: {data!r}")
    assert_bytes_decode_or_are_refused(data, bounds)


@fuzz_settings()
@given(check_requests(), edits, limits)
def test_damaged_requests_decode_or_are_refused(
    msg: pb.CheckRequest, damage: list[tuple[int, int]], bounds: Limits
) -> None:
    data = flip(msg.SerializeToString(), damage)
    note(f"to keep it, write these bytes to tests/fuzz/corpus/NAME.bin: {data!r}")
    assert_bytes_decode_or_are_refused(data, bounds)
