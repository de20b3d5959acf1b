"""The fuzz tests' hypothesis profiles ("ci" in `make test`, "long" in `make fuzz`) and audit log."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_fuzz import make_pristine
from fuzz_helpers import EXAMPLES, PROFILE_VARIABLE, profile_name, register_profiles

if profile_name() not in EXAMPLES:
    raise pytest.UsageError(f"{PROFILE_VARIABLE} must be one of {sorted(EXAMPLES)}, not {profile_name()!r}")

# Registered, not loaded: settings.load_profile would change hypothesis's defaults for every test
# collected after this folder. Each fuzz property takes its profile through fuzz_settings().
register_profiles()


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real audit log, never written to: each test damages a copy."""
    return make_pristine(tmp_path_factory.mktemp("pristine"))
