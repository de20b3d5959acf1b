"""Shared by the fuzz tests: the run length (a hypothesis profile chosen by PALISADE_FUZZ) and the corpus."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

CORPUS = Path(__file__).resolve().parent / "corpus"
PROFILE_VARIABLE = "PALISADE_FUZZ"
# max_examples per property: "ci" keeps all of tests/fuzz under a minute in `make test`; "long" is
# `make fuzz`, thousands of examples a property, new ones each run, failures kept in .hypothesis/
EXAMPLES = {"ci": 100, "long": 5000}
# seconds per fuzz test before pytest-timeout reports a hang (with every thread's stack)
TIMEOUTS = {"ci": 300, "long": 3600}
_SLOW_INPUTS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


def register_profiles() -> None:
    """Register "ci" (deterministic, brief) and "long"; none is loaded globally (see conftest.py)."""
    common = settings(deadline=None, suppress_health_check=_SLOW_INPUTS, print_blob=True)
    settings.register_profile("ci", common, max_examples=EXAMPLES["ci"], derandomize=True, database=None)
    settings.register_profile("long", common, max_examples=EXAMPLES["long"])


def profile_name() -> str:
    return os.environ.get(PROFILE_VARIABLE, "ci") or "ci"


def fuzz_settings(share: float = 1.0) -> settings:
    """The selected profile, with ``share`` of its examples (for properties whose examples cost more)."""
    profile = settings.get_profile(profile_name())
    return settings(profile, max_examples=max(1, round(profile.max_examples * share)))


def fuzz_timeout() -> int:
    return TIMEOUTS[profile_name()]


def corpus_files(suffix: str) -> list[Path]:
    """The corpus files that end with ``suffix``, in name order (one regression case each)."""
    return sorted(path for path in CORPUS.iterdir() if path.name.endswith(suffix))
