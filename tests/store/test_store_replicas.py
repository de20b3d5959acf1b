"""Three `palisade serve` replicas on one PostgreSQL behind a real Envoy: spread, hand-over, SIGKILL."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from server_helpers import HERE as SERVER_TESTS
from server_helpers import ServeProcess
from test_store_postgres import call, palisade

from benchmarks import chaos
from benchmarks.replicas_bench import answered_by, envoy_config, free_ports, replica_config, running_envoy
from engine.audit.pg_store import PgStore
from engine.client.guard_client import GuardClient

pytestmark = pytest.mark.postgres
RULESETS = SERVER_TESTS / "approval_rulesets"
RULESET = "approvals_test"
REPLICAS = 3
LOAD_S = 2.0


def start_replica(folder: Path, listen: str = "127.0.0.1:0") -> ServeProcess:
    args = ["--rulesets", str(RULESETS), "--listen", listen, "--data-dir", str(folder / "data")]
    return ServeProcess(*args, "--config", str(folder / "palisade.toml"))


def test_three_replicas_behind_envoy(url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    folders = [tmp_path / f"replica{i}" for i in range(REPLICAS)]
    with ExitStack() as stack:
        replicas: list[ServeProcess] = []
        ports: list[int] = []
        for folder in folders:  # one at a time: the first creates the keys that all share
            folder.mkdir()
            replica_config(folder, url, keys, "journal")
            replica = stack.enter_context(serve_process_at(folder))
            ports.append(int(replica.wait_ready().rsplit(":", 1)[1]))
            replicas.append(replica)
        listen, admin = free_ports(2)
        stack.enter_context(running_envoy(envoy_config(listen, admin, ports), tmp_path, admin))
        target = f"127.0.0.1:{listen}"

        with GuardClient(target, timeout=10.0) as client:  # spread: round robin per request
            for n in range(30):
                assert client.check(ruleset=RULESET, text=f"order {n}").outcome.name == "ALLOW"
            spread = answered_by(admin)
            assert sorted(spread) == sorted(ports) and all(spread[p] >= 5 for p in ports), spread

            tool = {"name": "shell.exec", "arguments": {"cmd": "rm -rf build/"}}
            opened = call(client, tool)  # through Envoy: one replica opens it
            assert opened.escalation is not None
            approval_id = opened.escalation.approval_id
        with GuardClient(f"127.0.0.1:{ports[1]}") as second, GuardClient(f"127.0.0.1:{ports[2]}") as third:
            second.resolve_approval(approval_id, approve=True, approver="alice")
            assert call(third, tool, approval_id).outcome.name == "ALLOW"  # resumed on another
            assert call(second, tool, approval_id).outcome.name == "BLOCK"  # used once, everywhere

        with chaos.load(target, RULESET) as answers:
            time.sleep(LOAD_S)
            replicas[0].proc.send_signal(signal.SIGKILL)
            replicas[0].proc.wait()
            before = len(answers.given)
            time.sleep(LOAD_S)
            after = len(answers.given)
        assert before > 100 and after - before > 100, (before, after, answers.refused)

        restarted = stack.enter_context(serve_process_at(folders[0], f"127.0.0.1:{ports[0]}"))
        restarted.wait_ready()  # stores what the killed replica's journal held, then serves
        for replica in [restarted, *replicas[1:]]:
            replica.signal(signal.SIGTERM)
            assert replica.wait() == 0
    answered = {decision_id for decision_id, _ in answers.given}
    store = PgStore.connect(url)
    try:
        stored = {row.decision_id for row in store.records()}
    finally:
        store.close()
    assert answered <= stored
    done = palisade("audit", "verify", "--store", url, "--public-key", str(keys / "signing.pub"))
    assert done.returncode == 0, done.stderr


@contextmanager
def serve_process_at(folder: Path, listen: str = "127.0.0.1:0") -> Iterator[ServeProcess]:
    process = start_replica(folder, listen)
    try:
        yield process
    finally:
        process.close()
