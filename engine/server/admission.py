"""Admission control: how many Check and Approvals calls work at once, and how long the others may wait."""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import grpc

from engine.config import ServeConfig

log = logging.getLogger("palisade.server")
P = ParamSpec("P")
T = TypeVar("T")
# gRPC reports "no deadline" as a deadline at the end of time; anything this far off is none.
_NO_DEADLINE_S = 365 * 24 * 3600.0
SHUTTING_DOWN = "the server is shutting down; call again (another worker or server answers)"
_arrival = threading.local()


def time_left_s(context: grpc.ServicerContext) -> float | None:
    """What remains of the call's deadline, in seconds; None when it has none."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_S:
        return None
    return float(remaining)


class RequestPool(ThreadPoolExecutor):
    """The threads of Check and Approvals calls. grpc submits a call here when it arrives (before its
    message is even read); the time is kept for the call's thread (``arrived_at``), so that a wait in
    this pool's queue counts like a wait at the gate."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        arrived = time.monotonic()

        def stamped() -> T:
            _arrival.time = arrived
            return fn(*args, **kwargs)

        return super().submit(stamped)


def arrived_at() -> float:
    """When the call on this thread arrived (monotonic); now, for a thread not of a RequestPool."""
    return float(getattr(_arrival, "time", time.monotonic()))


class Entry(enum.Enum):
    """What the gate answers a call."""

    IN = "in"  # a slot is the call's until it leaves (a stream's place, until it parts)
    FULL = "full"  # `limit` calls are in already
    TIMED_OUT = "timed out"  # no slot came free in time
    CLOSED = "closed"  # the server is shutting down


@dataclass(eq=False)
class _Waiter:
    woken: threading.Event = field(default_factory=threading.Event)
    granted: bool = False


class Gate:
    """``slots`` calls work at once and at most ``limit`` are in (working, waiting, or streaming,
    which needs no slot); a call that finds no free slot waits for one for a bounded time.

    A slot given back goes straight to the newest waiter (last in, first out): under overload the
    calls served are the freshest, and those refused are the ones that have waited longest, whose
    answers would come late anyway; under light load, where hardly two wait at once, the order
    hardly matters. A newcomer never takes a slot from a waiter."""

    def __init__(self, slots: int, limit: int) -> None:
        self.limit = limit
        self.calls = 0
        self.closed = False
        self._free = slots
        self._queue: list[_Waiter] = []
        self._queued_since: float | None = None  # when the queue last stopped being empty
        self._changed = threading.Condition()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def queued_s(self) -> float:
        """How long calls have been waiting for a slot without a break (0 when none waits)."""
        since = self._queued_since
        return 0.0 if since is None else time.monotonic() - since

    def enter(self, timeout_s: float) -> Entry:
        """Take a slot, waiting up to ``timeout_s`` for one; IN means ``leave`` must follow."""
        with self._changed:
            if (refused := self._refusal()) is not None:
                return refused
            if self._free:
                self._free -= 1
                self.calls += 1
                return Entry.IN
            if timeout_s <= 0:
                return Entry.TIMED_OUT
            waiter = _Waiter()
            if not self._queue:
                self._queued_since = time.monotonic()
            self._queue.append(waiter)
            self.calls += 1
        waiter.woken.wait(timeout_s)
        with self._changed:
            if waiter.granted:
                return Entry.IN
            self._dequeue(self._queue.index(waiter))
            self._part()
            return Entry.CLOSED if self.closed else Entry.TIMED_OUT

    def leave(self) -> None:
        """Give the slot back and leave."""
        with self._changed:
            self._hand_on()
            self._part()

    def hand_on(self) -> None:
        """Give the slot back but stay in (a call whose work is done and that only waits); ``part``
        must follow."""
        with self._changed:
            self._hand_on()

    def join(self) -> Entry:
        """Count in a call that takes no slot (a stream that mostly waits); IN means ``part`` must follow."""
        with self._changed:
            if (refused := self._refusal()) is not None:
                return refused
            self.calls += 1
            return Entry.IN

    def part(self) -> None:
        with self._changed:
            self._part()

    def close(self) -> None:
        """Refuse every call from now on (CLOSED), those waiting for a slot included."""
        with self._changed:
            self.closed = True
            for waiter in self._queue:
                waiter.woken.set()

    def idle(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` until no call is in; whether none is."""
        with self._changed:
            return self._changed.wait_for(lambda: self.calls == 0, timeout_s)

    def _hand_on(self) -> None:
        """The slot to the newest waiter, else to the free ones."""
        if self._queue:
            waiter = self._dequeue(-1)
            waiter.granted = True
            waiter.woken.set()
        else:
            self._free += 1

    def _refusal(self) -> Entry | None:
        if self.closed:
            return Entry.CLOSED
        return Entry.FULL if self.calls >= self.limit else None

    def _dequeue(self, index: int) -> _Waiter:
        waiter = self._queue.pop(index)
        if not self._queue:
            self._queued_since = None
        return waiter

    def _part(self) -> None:
        self.calls -= 1
        if not self.calls:
            self._changed.notify_all()


class Slot:
    """A call's place at the gate: its slot until ``done_working``, then only its place among the
    calls in until it leaves."""

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._working = True

    def done_working(self) -> None:
        """The call's work is done and it only waits now (for its audit record to be committed): its
        slot goes to the next call. Idempotent."""
        if self._working:
            self._working = False
            self._gate.hand_on()

    def leave(self) -> None:
        if self._working:
            self._working = False
            self._gate.leave()
        else:
            self._gate.part()


def done_working() -> None:
    """Tell the gate that the call on this thread has done its work (Slot.done_working); nothing for a
    thread that holds no slot."""
    slot: Slot | None = getattr(_arrival, "slot", None)
    if slot is not None:
        slot.done_working()


@dataclass(frozen=True, slots=True)
class Delay:
    """How long a call may wait for a slot, and what says so (named in a refusal)."""

    seconds: float
    source: str


class Admission:
    """Where Check and Approvals calls run: the request pool, and the gate before their work.

    grpcio's sync server hands each call to a thread pool as soon as it arrives and gives no arrival
    time; its own limit (``maximum_concurrent_rpcs``) counts every call, health included, and a call
    queued in its pool waits unseen. So Check and Approvals calls run on a pool of their own, the
    RequestPool, which notes when grpc handed each call over; and, before its work, each call takes
    one of a few slots at the Gate (``concurrency``). A call that finds a slot free works at once; one
    that finds none waits for one, but only as long as it may:

    - ``max_queue_delay_ms`` from its arrival, or, for a Check, its ruleset's budget p95 when that is
      longer (a ruleset whose Checks take 100 ms must not be refused for a 5 ms wait at light load),
      except while calls have been waiting without a break for longer than that budget: a standing
      queue is overload, not a burst, and there every call gets ``max_queue_delay_ms``;
    - and no later than its deadline allows: its deadline less ``deadline_margin_ms`` (kept back to
      reply). A call whose deadline leaves no time at all is refused at once.

    Past either bound the call is refused with RESOURCE_EXHAUSTED and the reason, before any work is
    done. A freed slot goes to the newest waiter, so under overload the calls served have hardly
    waited and keep a latency near that of their work, and the others are told within the bound
    instead of timing out. At most ``max_concurrent_rpcs`` calls are in at all (working, waiting or
    streaming); beyond, a call is refused at once. Health and reflection run on the server's own small
    pool, outside all of this, so they answer however loaded or stalled the request pool is.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.pool = RequestPool(config.threads, thread_name_prefix="palisade-rpc")
        self.gate = Gate(config.concurrency, config.max_concurrent_rpcs)
        ms = config.max_queue_delay_ms
        self.delay = Delay(ms / 1000, f"max_queue_delay_ms {ms:g}")
        self.margin_ms = config.deadline_margin_ms
        self.stopping = threading.Event()

    @contextmanager
    def working(self, context: grpc.ServicerContext, delay: Delay | None = None) -> Iterator[None]:
        """Hold a slot for the block; or end the call, saying why it gets none."""
        delay = self._bound(delay)
        arrived = arrived_at()
        slack_s = self._slack_s(context)
        if slack_s <= 0:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self._no_time(context, arrived))
        wait_s = delay.seconds - (time.monotonic() - arrived)
        entry = self.gate.enter(min(wait_s, slack_s))
        if entry is not Entry.IN:
            context.abort(*self._refusal(entry, context, arrived, delay if wait_s <= slack_s else None))
        _arrival.slot = slot = Slot(self.gate)
        try:
            yield
        finally:
            _arrival.slot = None
            slot.leave()

    @contextmanager
    def streaming(self, context: grpc.ServicerContext) -> Iterator[None]:
        """Count a stream in for the block (it takes no slot); or end the call, saying why not."""
        entry = self.gate.join()
        if entry is not Entry.IN:
            context.abort(*self._refusal(entry, context, arrived_at(), self.delay))
        try:
            yield
        finally:
            self.gate.part()

    def _bound(self, delay: Delay | None) -> Delay:
        """The call's own delay (its ruleset's budget), unless calls have been waiting without a break
        for longer than that: then ``max_queue_delay_ms``, so that a standing queue sheds fast."""
        if delay is None or self.gate.queued_s() > delay.seconds:
            return self.delay
        return delay

    def _slack_s(self, context: grpc.ServicerContext) -> float:
        """How long the call's deadline lets it wait: what remains, less the margin kept to reply."""
        left_s = time_left_s(context)
        return math.inf if left_s is None else left_s - self.margin_ms / 1000

    def _refusal(
        self, entry: Entry, context: grpc.ServicerContext, arrived: float, delay: Delay | None
    ) -> tuple[grpc.StatusCode, str]:
        """Why ``entry`` keeps the call out; ``delay`` None: its deadline, not a delay, ended its wait."""
        if entry is Entry.CLOSED:
            return grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN
        if entry is Entry.FULL:
            message = f"overloaded: {self.gate.limit} calls in progress, the max_concurrent_rpcs limit"
        elif delay is None:
            message = self._no_time(context, arrived)
        else:
            waited_ms = (time.monotonic() - arrived) * 1000
            message = f"overloaded: waited {waited_ms:.0f} ms for a worker thread, over {delay.source}"
        return grpc.StatusCode.RESOURCE_EXHAUSTED, message

    def _no_time(self, context: grpc.ServicerContext, arrived: float) -> str:
        left_ms = max(time_left_s(context) or 0.0, 0.0) * 1000
        waited_ms = (time.monotonic() - arrived) * 1000
        return (
            f"the deadline leaves no time to decide: {left_ms:.0f} ms left after {waited_ms:.0f} ms"
            f" waiting for a worker thread, and deadline_margin_ms {self.margin_ms:g} is kept back to reply"
        )

    def close(self) -> None:
        """Shutting down: refuse new calls and those waiting for a slot, and end streams (UNAVAILABLE)."""
        self.stopping.set()
        self.gate.close()

    def drain(self, grace_s: float | None) -> None:
        """Wait up to ``grace_s`` for the calls in to finish; log those that grpc is about to cut."""
        if grace_s is not None and not self.gate.idle(grace_s):
            log.warning(
                "shutdown: %d call(s) still in progress after %g s (shutdown_grace_s) are cut short;"
                " their callers get UNAVAILABLE 'Cancelling all calls'",
                self.gate.calls, grace_s,
            )  # fmt: skip
