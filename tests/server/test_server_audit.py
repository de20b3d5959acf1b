"""Audit evidence through the real server: every answer recorded, a crash loses no answered decision,
and a log that cannot be written never yields an unrecorded ALLOW."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from faults import writes_refused
from grpc_health.v1 import health_pb2, health_pb2_grpc
from server_helpers import RULESETS, config, log_verifies, running, serve_process

from dsl.types import Outcome
from engine.audit import AuditConfig, AuditLog, AuditPaths
from engine.audit.store import Store
from engine.client.guard_client import GuardClient, GuardError
from engine.protocol.wire import GUARD_SERVICE

V1 = "1.0.0"
SECRET = "my ssn is 123-45-6789 and my email is jane@example.com"
WAIT_S = 30.0


def _recorded(data_dir: Path) -> dict[str, dict[str, object]]:
    store = Store.open_reader(AuditPaths.of(data_dir).database)
    try:
        return {row.decision_id: json.loads(row.body) for row in store.records()}
    finally:
        store.close()


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def test_every_answer_is_recorded_with_its_id_and_the_log_verifies(tmp_path: Path) -> None:
    with running(config(data_dir=str(tmp_path))) as server, GuardClient(f"127.0.0.1:{server.port}") as c:
        answers = [
            c.check(ruleset="server_test", version=V1, text="what is the weather like?"),
            c.check(ruleset="server_test", version=V1, text=SECRET),
        ]
    records = _recorded(tmp_path)
    assert [records[a.decision_id]["outcome"] for a in answers] == ["allow", "block"]
    assert log_verifies(tmp_path)
    database = AuditPaths.of(tmp_path).database.read_bytes()
    assert b"123-45-6789" not in database and b"jane@example.com" not in database


def _load(target: str, answered: list[str], stop: threading.Event) -> None:
    with GuardClient(target, timeout=5.0) as client:
        while not stop.is_set():
            try:
                result = client.check(ruleset="server_test", version=V1, text=SECRET)
            except GuardError:
                return  # the server is gone
            answered.append(result.decision_id)


def test_a_killed_server_keeps_every_decision_it_answered(tmp_path: Path) -> None:
    args = ["--rulesets", str(RULESETS), "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)]
    answered: list[str] = []
    stop = threading.Event()
    with serve_process(*args) as server:
        target = server.wait_ready()
        callers = [threading.Thread(target=_load, args=(target, answered, stop)) for _ in range(4)]
        for caller in callers:
            caller.start()
        _wait_until(lambda: len(answered) >= 200, "200 decisions were answered")
        server.signal(signal.SIGKILL)
        server.wait()
        stop.set()
        for caller in callers:
            caller.join()
    AuditLog.open(tmp_path).close()  # what the next start does first: store what the journal holds
    assert set(answered) <= set(_recorded(tmp_path))
    assert log_verifies(tmp_path)


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=GUARD_SERVICE)).status)


def test_an_unwritable_log_fails_closed_reports_not_serving_and_recovers(tmp_path: Path) -> None:
    cfg = config(data_dir=str(tmp_path), audit=AuditConfig(durability="sync", retry_every_seconds=0.05))
    with running(cfg) as server:
        target = f"127.0.0.1:{server.port}"
        with GuardClient(target) as client, grpc.insecure_channel(target) as channel:
            with writes_refused():
                refused = client.check(ruleset="server_test", version=V1, text="what is the weather?")
                assert refused.outcome is Outcome.BLOCK
                assert [e.code for e in refused.errors] == ["audit_unavailable"]
                assert _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            _wait_until(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING, "recovery")
            allowed = client.check(ruleset="server_test", version=V1, text="what is the weather?")
            assert allowed.outcome is Outcome.ALLOW
    records = _recorded(tmp_path)
    assert refused.decision_id not in records and allowed.decision_id in records
    assert log_verifies(tmp_path)
