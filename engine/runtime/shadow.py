"""Shadow evaluation off the response path: a bounded background queue, sampled down to keep the budget."""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """One Check to evaluate again with the shadow version, after its answer went back."""

    evaluator: Evaluator  # the shadow version
    request: Request
    answered: Decision  # the answering version's decision (the policy's, before approvals)
    decision_id: str  # the Check's decision id (the shadow record cites it)
    rate: float  # the ruleset's sample rate when the job was taken


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


class ShadowRunner:
    """Evaluates shadow versions on one background thread; ``record`` writes each result. Offering a
    job never blocks: beyond ``QUEUE`` waiting, or outside the sample, the Check goes unshadowed."""

    def __init__(self, record: Recorder, timeout_s: float | None = None) -> None:
        self._record = record
        self._timeout_s = timeout_s
        self._samplers: dict[str, Sampler] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(QUEUE)
        self._thread: threading.Thread | None = None
        self.dropped = 0  # jobs the full queue turned away

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
