"""Admission: bounded waits or refusals saying why, health outside the request pool, shutdown reasons."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from server_helpers import RULESETS, config, running, wait_for

from dsl.types import Outcome
from engine.audit import AuditPaths
from engine.audit.store import lock_path
from engine.client.guard_client import CheckResult, GuardClient, GuardError
from engine.config import ServeConfig
from engine.protocol.wire import apb, apb_grpc
from engine.server.admission import Entry, Gate, Slot
from engine.server.app import GuardServer

# Each slow_test detector backtracks on it until the regex timeout: a Check takes 9 of them.
SLOW_TEXT = "123456789" + "a" * 40 + "!"
SERVING = health_pb2.HealthCheckResponse.SERVING


def outcome(call: Callable[[], CheckResult]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except GuardError as exc:
        return exc.code, exc.details
    return grpc.StatusCode.OK, ""


@contextmanager
def serving(cfg: ServeConfig) -> Iterator[tuple[GuardServer, GuardClient, ThreadPoolExecutor]]:
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}", timeout=30) as client:
        client.check(ruleset="server_test", text="warm the channel up")
        with ThreadPoolExecutor(16) as pool:
            yield server, client, pool


def slow(client: GuardClient, pool: ThreadPoolExecutor) -> Future[tuple[grpc.StatusCode, str]]:
    return pool.submit(outcome, lambda: client.check(ruleset="slow_test", text=SLOW_TEXT))


def busy(server: GuardServer, working: int, waiting: int = 0) -> None:
    """Wait until the gate has these many calls working and waiting."""
    gate = server.admission.gate
    wait_for(lambda: (gate.calls - gate.waiting, gate.waiting) == (working, waiting))


def test_a_call_that_waits_past_max_queue_delay_is_refused_naming_its_wait() -> None:
    cfg = config(regex_timeout_ms=300, concurrency=1, max_queue_delay_ms=100)
    with serving(cfg) as (server, client, pool):
        first = slow(client, pool)
        busy(server, working=1)
        code, details = outcome(lambda: client.check(ruleset="server_test", text="behind it"))
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details.startswith("overloaded: waited ") and "for a worker thread" in details
        assert details.endswith("over max_queue_delay_ms 100")
        assert first.result()[0] is grpc.StatusCode.OK


def test_a_call_waits_for_a_worker_thread_within_max_queue_delay() -> None:
    cfg = config(regex_timeout_ms=100, concurrency=1, max_queue_delay_ms=60_000)
    with serving(cfg) as (server, client, pool):
        first = slow(client, pool)
        busy(server, working=1)
        second = pool.submit(client.check, ruleset="server_test", text="behind it")
        assert second.result().outcome is Outcome.ALLOW
        assert first.result()[0] is grpc.StatusCode.OK


def test_a_check_may_wait_as_long_as_its_rulesets_budget(tmp_path: Path) -> None:
    source = (RULESETS / "slow.pal").read_text(encoding="utf-8")
    budgeted = source.replace('owner "tests@example.com"', 'owner "tests@example.com"\n  budget p95 60s')
    (tmp_path / "slow.pal").write_text(budgeted, encoding="utf-8")
    cfg = config(rulesets=str(tmp_path), regex_timeout_ms=100, concurrency=1, max_queue_delay_ms=50)
    with running(cfg) as server, GuardClient(f"127.0.0.1:{server.port}", timeout=30) as client:
        with ThreadPoolExecutor(2) as pool:
            first = slow(client, pool)
            busy(server, working=1)
            code, details = outcome(lambda: client.check(ruleset="slow_test", text=SLOW_TEXT))
        assert (code, details) == (grpc.StatusCode.OK, "")  # it waited 9 x 100 ms, over max_queue_delay_ms
        assert first.result()[0] is grpc.StatusCode.OK


def test_a_check_waiting_for_its_audit_commit_gives_its_slot_to_the_next() -> None:
    cfg = config(concurrency=1, max_queue_delay_ms=50, audit={"stall_seconds": 60})
    with serving(cfg) as (server, client, pool):
        lock = os.open(lock_path(AuditPaths.of(Path(cfg.data_dir)).database), os.O_RDWR)
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process holds the database: every commit waits
        try:
            first = pool.submit(client.check, ruleset="server_test", text="first")
            busy(server, working=1)
            second = pool.submit(client.check, ruleset="server_test", text="second")
            busy(server, working=2)  # both decided, both waiting for the commit, neither for a slot
            assert not first.done() and not second.done()  # no answer before its record
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)
        assert (first.result().outcome, second.result().outcome) == (Outcome.ALLOW, Outcome.ALLOW)
        busy(server, working=0)


def test_a_deadline_that_leaves_no_time_to_decide_is_refused_at_once() -> None:
    cfg = config(deadline_margin_ms=1000)
    with serving(cfg) as (_, client, _):
        code, details = outcome(lambda: client.check(ruleset="server_test", text="hi", timeout=0.8))
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details.startswith("the deadline leaves no time to decide: ")
        assert "deadline_margin_ms 1000" in details


def test_a_call_waiting_for_a_worker_thread_is_refused_once_its_deadline_leaves_no_time() -> None:
    cfg = config(regex_timeout_ms=300, concurrency=1, max_queue_delay_ms=60_000, deadline_margin_ms=100)
    with serving(cfg) as (server, client, pool):
        first = slow(client, pool)
        busy(server, working=1)
        code, details = outcome(lambda: client.check(ruleset="server_test", text="hi", timeout=1.0))
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details.startswith("the deadline leaves no time to decide: ")
        assert "waiting for a worker thread" in details
        assert first.result()[0] is grpc.StatusCode.OK


def test_calls_beyond_max_concurrent_rpcs_are_refused_at_once_naming_the_limit() -> None:
    cfg = config(regex_timeout_ms=300, max_concurrent_rpcs=2, concurrency=1, max_queue_delay_ms=60_000)
    with serving(cfg) as (server, client, pool):
        held = [slow(client, pool) for _ in range(2)]
        busy(server, working=1, waiting=1)
        code, details = outcome(lambda: client.check(ruleset="server_test", text="one too many"))
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details == "overloaded: 2 calls in progress, the max_concurrent_rpcs limit"
        assert [f.result()[0] for f in held] == [grpc.StatusCode.OK] * 2


@pytest.mark.parametrize(
    ("settings", "codes"),
    [
        # every call the limit allows is in: the others are refused
        ({"max_concurrent_rpcs": 2}, {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}),
        # every request thread is taken: the others queue for one, then find a slot free
        ({"threads": 2}, {grpc.StatusCode.OK}),
    ],
    ids=["limit-reached", "threads-taken"],
)
def test_health_answers_while_checks_are_shed_or_queued(
    settings: dict[str, int], codes: set[grpc.StatusCode]
) -> None:
    cfg = config(regex_timeout_ms=300, **settings)
    with serving(cfg) as (server, client, pool):
        checks = [slow(client, pool) for _ in range(6)]
        time.sleep(0.5)  # the Checks take 9 x 300 ms each: they hold the request pool now
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == SERVING
        assert {f.result()[0] for f in checks} == codes


def test_shutdown_refuses_the_calls_waiting_for_a_worker_thread_with_the_reason() -> None:
    cfg = config(regex_timeout_ms=300, concurrency=1, max_queue_delay_ms=60_000)
    server = GuardServer(cfg)
    port = server.start()
    with GuardClient(f"127.0.0.1:{port}", timeout=30) as client, ThreadPoolExecutor(4) as pool:
        client.check(ruleset="server_test", text="warm the channel up")
        first = slow(client, pool)
        busy(server, working=1)
        second = pool.submit(outcome, lambda: client.check(ruleset="server_test", text="behind it"))
        busy(server, working=1, waiting=1)
        stopping = threading.Thread(target=server.stop, args=(30,))
        stopping.start()
        code, details = second.result(timeout=5)
        assert code is grpc.StatusCode.UNAVAILABLE
        assert details.startswith("the server is shutting down")
        assert first.result()[0] is grpc.StatusCode.OK
        stopping.join()


def test_shutdown_ends_watch_streams_at_once_with_the_reason() -> None:
    server = GuardServer(config())
    port = server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = apb_grpc.ApprovalsStub(channel).Watch(apb.WatchApprovalsRequest(queue="q"), timeout=5)
        wait_for(lambda: server.admission.gate.calls == 1)  # the Watch is in (it holds no slot)
        stopping = threading.Thread(target=server.stop, args=(30,))
        stopping.start()
        with pytest.raises(grpc.RpcError) as info:
            list(stream)
        stopping.join()
    error = info.value
    assert isinstance(error, grpc.Call) and error.code() is grpc.StatusCode.UNAVAILABLE
    assert (error.details() or "").startswith("the server is shutting down")


# The gate alone


def test_a_freed_slot_goes_to_the_newest_waiter_and_never_to_a_newcomer() -> None:
    gate = Gate(slots=1, limit=8)
    assert gate.enter(0) is Entry.IN
    order: list[str] = []

    def wait(name: str) -> None:
        assert gate.enter(60) is Entry.IN
        order.append(name)

    first, second = (threading.Thread(target=wait, args=(name,)) for name in ("first", "second"))
    first.start()
    wait_for(lambda: gate.waiting == 1)
    second.start()
    wait_for(lambda: gate.waiting == 2)
    gate.leave()
    wait_for(lambda: order == ["second"])
    assert gate.enter(0) is Entry.TIMED_OUT  # a newcomer does not take it from the one still waiting
    gate.leave()
    first.join()
    second.join()
    assert order == ["second", "first"]
    assert gate.queued_s() == 0.0  # nobody waits any more


def test_a_call_done_working_hands_its_slot_on_but_still_counts_against_the_limit() -> None:
    gate = Gate(slots=1, limit=2)
    assert gate.enter(0) is Entry.IN
    slot = Slot(gate)
    waiter: Future[Entry] = ThreadPoolExecutor(1).submit(gate.enter, 60)
    wait_for(lambda: gate.waiting == 1)
    slot.done_working()
    slot.done_working()  # once only
    assert waiter.result(timeout=5) is Entry.IN
    assert (gate.calls, gate.enter(0)) == (2, Entry.FULL)
    slot.leave()
    assert gate.calls == 1
    gate.leave()
    assert gate.calls == 0


def test_the_limit_counts_streams_and_waiters_and_close_wakes_the_waiters() -> None:
    gate = Gate(slots=1, limit=3)
    assert (gate.enter(0), gate.join()) == (Entry.IN, Entry.IN)
    waiter: Future[Entry] = ThreadPoolExecutor(1).submit(gate.enter, 60)
    wait_for(lambda: gate.waiting == 1)
    assert (gate.join(), gate.enter(60)) == (Entry.FULL, Entry.FULL)
    gate.close()
    assert waiter.result(timeout=5) is Entry.CLOSED
    assert gate.join() is Entry.CLOSED
