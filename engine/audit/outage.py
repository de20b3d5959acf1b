"""Logging an outage by its state changes, with counts, instead of a line for every failure it causes."""

from __future__ import annotations

import logging
import threading
import time

QUIET_S = 60.0  # at most one failure line this often


class Outage:
    """Logs "<failing>: <problem> (N <counted> so far)" once when something starts failing and
    "<working> after N <counted> and T s" once when it works again. Thread-safe.

    While it keeps failing, a reminder at most every QUIET_S, and only if the count grew. A failure
    that comes back within QUIET_S of the last failure line (a flap) is not announced at once but by
    that reminder, and if it is over before then, its recovery is not announced either: the lines
    always alternate, and the count of the next announced recovery includes the flap's.
    """

    def __init__(self, log: logging.Logger, failing: str, working: str, counted: str) -> None:
        self._log = log
        self._failing = failing  # "audit log cannot be written"
        self._working = working  # "audit log writable again"
        self._counted = counted  # "refused decision(s)"
        self._lock = threading.Lock()
        self._down = False
        self._since = 0.0  # when the failure began
        self._count = 0  # since the last announced recovery
        self._announced = False  # whether this failure has had its line
        self._line_at = -QUIET_S  # when the last failure line was logged
        self._line_count = 0  # the count it gave

    def fail(self, problem: str, count: int = 0) -> None:
        """It failed (again), costing ``count`` more."""
        with self._lock:
            now = time.monotonic()
            if not self._down:
                self._down, self._since = True, now
            self._count += count
            quiet = now - self._line_at < QUIET_S
            if quiet or (self._announced and self._count == self._line_count):
                return
            reminder = self._announced
            self._announced, self._line_at, self._line_count = True, now, self._count
            took = now - self._since
        failing = f"{self._failing} (for {took:.0f} s)" if reminder else self._failing
        self._log.error("%s: %s (%d %s so far)", failing, problem, self._line_count, self._counted)

    def cost(self, count: int = 1) -> None:
        """While failing, ``count`` more refused because of it (not logged by itself)."""
        with self._lock:
            self._count += count

    def recover(self) -> None:
        """It works again: announced if its failure was."""
        with self._lock:
            if not self._down:
                return
            self._down = False
            if not self._announced:
                return
            self._announced = False
            count, took, self._count = self._count, time.monotonic() - self._since, 0
        self._log.warning("%s after %d %s and %.1f s", self._working, count, self._counted, took)
