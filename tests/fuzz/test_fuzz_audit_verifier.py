"""Fuzzing the audit verifier: damage to a real log is reported in one line with a documented status."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from audit_fuzz import Op, assert_verify_answers, copy_log, corrupt, corruptions
from fuzz_helpers import fuzz_settings, fuzz_timeout
from hypothesis import event, given, note

pytestmark = pytest.mark.timeout(fuzz_timeout())


def test_the_undamaged_log_is_whole(pristine: Path, tmp_path: Path) -> None:
    assert assert_verify_answers(copy_log(pristine, tmp_path / "data"), changed=False) == 0


@fuzz_settings()
@given(ops=corruptions)
def test_any_corruption_is_reported_not_raised(pristine: Path, ops: list[Op]) -> None:
    note(f"to keep it, write this to tests/fuzz/corpus/NAME.audit.json: {json.dumps(ops)}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = copy_log(pristine, Path(tmp) / "data")
        changed = corrupt(data_dir, ops)
        status = assert_verify_answers(data_dir, changed)
    event(f"exit status {status}")
