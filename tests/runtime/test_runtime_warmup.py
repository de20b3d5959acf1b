"""Warm-up: once Guard.open returns, a first Check loads nothing that a second Check does not."""

from __future__ import annotations

import itertools
import multiprocessing
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from dsl.types import Stage
from engine.config import ServeConfig
from engine.guard import Guard
from engine.runtime.request import Request

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "rulesets"
# Two answers with the same kinds of content (an order number, an email address, a phone number, a
# link), neither of them a text that a warm-up could have scanned: the second shows what a Check of
# such a text costs once everything is loaded. Both are allowed at every stage, so that both take the
# same path ("If anything looks wrong, write to ..." escalates at `tool_result`: a policy test in
# rulesets/coding_agent.tests.toml).
ANSWERS = (
    "Your order #40213 shipped on Monday. For changes, email help@example.org or call"
    " 415-555-0132; tracking: https://track.example.com/40213",
    "Your refund for order #40877 was issued today. Questions? Email billing@example.net or phone"
    " (212) 555-0187; details: https://help.example.com/refunds",
)
# Calls a first Check may make beyond the second's: Python's own first-use caches (abc's subclass
# checks on a first tool call, about 100). Loading presidio's phone patterns and the public-suffix
# list on a first `pii` scan makes about 190,000.
FIRST_USE_CALLS = 500
# Masking audit excerpts runs a `pii` detector of its own: a ruleset that declares none still needs it warm.
EXCERPTS = """ruleset excerpts_only version "1.0.0" {
  owner "tests@example.com"
  default allow
  audit excerpts 200
  rule refunds on input, output {
    when "refund" in content then block "refunds go to the form"
  }
}
"""


class Calls:
    """Counts the Python calls that the thread calling ``of`` and the detector threads make."""

    def __init__(self) -> None:
        self._next = itertools.count()
        self._on = threading.Event()
        threading.setprofile(self._count)  # the detector threads, which start after this

    def _count(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and self._on.is_set() and _measured(threading.current_thread()):
            next(self._next)

    def of(self, call: Callable[..., object], *args: object) -> int:
        start = next(self._next)
        self._on.set()
        sys.setprofile(self._count)
        try:
            call(*args)
        finally:
            sys.setprofile(None)
            self._on.clear()
        return next(self._next) - start - 1


def _measured(thread: threading.Thread) -> bool:
    """The thread that calls check, and the detector threads (not the audit log's writer)."""
    return thread is threading.main_thread() or thread.name.startswith("palisade-det")


def checks_calls(rulesets: str, data_dir: str) -> dict[str, list[int]]:
    """Run in a fresh interpreter (nothing loaded by another test): Guard.open on ``rulesets``, then,
    by ruleset and stage, the Python calls that a Check of each answer makes."""
    calls = Calls()
    config = ServeConfig.model_validate({"rulesets": rulesets, "data_dir": data_dir})
    with Guard.open(config) as guard:
        return {
            f"{name} {stage}": [
                calls.of(guard.check, name, Request(stage=stage, text=text)) for text in ANSWERS
            ]
            for name, stage in itertools.product(sorted(guard.registry.active), Stage)
        }


@pytest.fixture(params=["shipped", "excerpts"])
def rulesets(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The shipped rulesets, or one with audit excerpts and no detector."""
    if request.param == "shipped":
        return SHIPPED
    (tmp_path / "rulesets").mkdir()
    (tmp_path / "rulesets" / "excerpts.pal").write_text(EXCERPTS, encoding="utf-8")
    return tmp_path / "rulesets"


def test_the_first_check_after_open_loads_nothing_the_second_does_not(rulesets: Path, tmp_path: Path) -> None:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
        found = fresh.submit(checks_calls, str(rulesets), str(tmp_path / "data")).result(timeout=240)
    assert len(found) == len(list(rulesets.glob("*.pal"))) * len(Stage)
    slow = {check: calls for check, calls in found.items() if calls[0] > calls[1] + FIRST_USE_CALLS}
    assert not slow, f"first Checks that loaded something (calls of the first, then the second): {slow}"
