"""Shadow evaluation off the response path: a bounded background queue, sampled down to keep the budget."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from engine.runtime.decision import Decision
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import Request

log = logging.getLogger("palisade.shadow")
WINDOW = 256  # the active version's latest evaluation times, per ruleset
EVERY = 32  # the rate is revised after this many Checks
HIGH = 0.8  # the active's p95 above this share of its budget: halve the rate
LOW = 0.5  # below this share: double it (up to every Check)
MIN_RATE = 1 / 1024
QUEUE = 64  # shadow evaluations waiting at most; a full queue drops the newest (counted as sampled out)
SETTLE_S = 0.002  # quiet: no Check in flight, the last one ended this long ago (its answer on its way out)
WAIT_S = 0.02  # a job waits for a quiet moment at most this long after it was offered, then runs anyway


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """One Check to evaluate again with the shadow version, after its answer went back."""

    evaluator: Evaluator  # the shadow version
    request: Request
    answered: Decision  # the answering version's decision (the policy's, before approvals)
    decision_id: str  # the Check's decision id (the shadow record cites it)
    rate: float  # the ruleset's sample rate when the job was taken
    offered: float = field(default_factory=time.monotonic)


Recorder = Callable[[ShadowJob, Decision], None]


class Sampler:
    """One ruleset's shadow sample rate: halved while the active version's p95 (over its last
    ``WINDOW`` Checks) is above ``HIGH`` of its budget, doubled while below ``LOW``."""

    def __init__(self) -> None:
        self.rate = 1.0
        self._latencies: deque[float] = deque(maxlen=WINDOW)
        self._seen = 0

    def observe(self, duration_us: float, budget_us: int) -> None:
        self._latencies.append(duration_us)
        self._seen += 1
        if self._seen % EVERY or budget_us <= 0:
            return
        ordered = sorted(self._latencies)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        if p95 > budget_us * HIGH:
            self.rate = max(MIN_RATE, self.rate / 2)
        elif p95 < budget_us * LOW:
            self.rate = min(1.0, self.rate * 2)


class Traffic:
    """The Checks in flight (Guard.check counts each: ``with traffic:``), so that shadow work can wait
    for a quiet moment: none in flight, and the last one ended ``SETTLE_S`` ago (its answer sent). A
    shadow evaluated while a Check is answered takes the GIL and a core from it."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._ended = 0.0  # time.monotonic() when the last Check ended
        self._waiting = False  # the shadow thread waits to hear that none is in flight

    @property
    def waiting(self) -> bool:
        """Whether the shadow thread is waiting for the Checks in flight to end."""
        return self._waiting

    def __enter__(self) -> None:
        with self._changed:
            self._in_flight += 1

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._changed:
            self._in_flight -= 1
            self._ended = time.monotonic()
            if self._waiting and not self._in_flight:
                self._changed.notify()

    def wait_quiet(self, until: float) -> bool:
        """Wait for a quiet moment, at most until ``until`` (time.monotonic()); False when none came."""
        with self._changed:
            while True:
                now, settled = time.monotonic(), self._ended + SETTLE_S
                if not self._in_flight and now >= settled:
                    return True
                if now >= until:
                    return False
                self._waiting = bool(self._in_flight)  # notified when the last ends; else wait it out
                self._changed.wait((until if self._in_flight else min(until, settled)) - now)
                self._waiting = False


class ShadowRunner:
    """Evaluates shadow versions on one background thread; ``record`` writes each result. Offering a
    job never blocks: beyond ``QUEUE`` waiting, or outside the sample, the Check goes unshadowed. A
    job waits for a quiet moment of ``traffic`` at most ``WAIT_S`` after it was offered, so that the
    shadow works while no Check is being answered; one older than that (a backlog) runs at once."""

    def __init__(self, record: Recorder, timeout_s: float | None = None) -> None:
        self._record = record
        self._timeout_s = timeout_s
        self.traffic = Traffic()
        self._samplers: dict[str, Sampler] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(QUEUE)
        self._thread: threading.Thread | None = None
        self.dropped = 0  # jobs the full queue turned away
        self.unquiet = 0  # jobs that found no quiet moment within WAIT_S and ran beside Checks

    def rate(self, ruleset: str) -> float:
        """The sample rate of ``ruleset`` now."""
        with self._lock:
            sampler = self._samplers.get(ruleset)
            return 1.0 if sampler is None else sampler.rate

    def offer(
        self, shadow: Evaluator, request: Request, answered: Decision, decision_id: str, budget_us: int
    ) -> bool:
        """Queue ``request`` for ``shadow`` if sampled; True when queued."""
        with self._lock:
            sampler = self._samplers.setdefault(answered.ruleset, Sampler())
            sampler.observe(answered.duration_us, budget_us)
            rate = sampler.rate
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="palisade-shadow", daemon=True)
                self._thread.start()
        if rate < 1.0 and random.random() >= rate:  # sampling, not secrecy
            return False
        try:
            self._queue.put_nowait(ShadowJob(shadow, request, answered, decision_id, rate))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if not self.traffic.wait_quiet(job.offered + WAIT_S):
                self.unquiet += 1
            try:
                self._record(job, job.evaluator.evaluate(job.request, timeout_s=self._timeout_s))
            except Exception:  # a shadow never changes an answer; its failure is only logged
                log.exception("shadow evaluation of decision %s failed", job.decision_id)

    def close(self) -> None:
        """Finish the queued jobs (their records written), then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
