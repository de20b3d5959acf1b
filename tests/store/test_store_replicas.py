"""Three `palisade serve` replicas on one PostgreSQL behind a real Envoy: spread, hand-over, SIGKILL."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from server_helpers import HERE as SERVER_TESTS
from server_helpers import ServeProcess
from test_store_postgres import call, palisade

from benchmarks import chaos
from benchmarks.envoy_bench import _wait_ready, envoy_binary
from engine.audit.pg_store import PgStore
from engine.client.guard_client import GuardClient

pytestmark = pytest.mark.postgres
ROOT = SERVER_TESTS.parents[1]
ENVOY_YAML = ROOT / "examples" / "deploy" / "envoy.yaml"
RULESETS = SERVER_TESTS / "approval_rulesets"
RULESET = "approvals_test"
REPLICAS = 3
LOAD_S = 2.0


def replica_config(url: str, keys: Path, folder: Path) -> Path:
    """A replica's config: the shared database, the shared keys, journal durability."""
    path = folder / "palisade.toml"
    path.write_text(
        f'[store]\nurl = "{url}"\n\n[audit]\ndurability = "journal"\n'
        f'hmac_key_path = "{keys / "hmac.key"}"\nsigning_key_path = "{keys / "signing.key"}"\n',
        encoding="utf-8",
    )
    return path


def start_replica(folder: Path, listen: str = "127.0.0.1:0") -> ServeProcess:
    args = ["--rulesets", str(RULESETS), "--listen", listen, "--data-dir", str(folder / "data")]
    return ServeProcess(*args, "--config", str(folder / "palisade.toml"))


def envoy_config(listen: int, admin: int, replicas: list[int]) -> dict[str, Any]:
    """examples/deploy/envoy.yaml with these ports, and nothing else changed."""
    config: dict[str, Any] = yaml.safe_load(ENVOY_YAML.read_text(encoding="utf-8"))
    config["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = listen
    hosts = config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert len(hosts) == len(replicas)
    for host, port in zip(hosts, replicas, strict=True):
        host["endpoint"]["address"]["socket_address"]["port_value"] = port
    return config


@contextmanager
def running_envoy(config: dict[str, Any], workdir: Path, admin: int) -> Iterator[None]:
    path = workdir / "envoy.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with (workdir / "envoy.log").open("wb") as log:
        command = [envoy_binary(), "-c", str(path), "--concurrency", "1", "--disable-hot-restart"]
        command += ["-l", "warning"]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(admin, process)
            yield
        finally:
            process.terminate()
            process.wait(10)


def answered_by(admin: int) -> dict[int, int]:
    """Envoy's count of successful requests per replica port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/clusters", timeout=5) as answer:
        text = answer.read().decode()
    found = re.findall(r"^palisade::127\.0\.0\.1:(\d+)::rq_success::(\d+)$", text, re.MULTILINE)
    return {int(port): int(count) for port, count in found}


def wait_healthy(admin: int, count: int) -> None:
    for _ in range(100):
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/clusters", timeout=5) as answer:
            text = answer.read().decode()
        if len(re.findall(r"^palisade::.*::health_flags::healthy$", text, re.MULTILINE)) == count:
            return
        time.sleep(0.1)
    raise AssertionError("the replicas did not all become healthy in Envoy")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_three_replicas_behind_envoy(url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    folders = [tmp_path / f"replica{i}" for i in range(REPLICAS)]
    with ExitStack() as stack:
        replicas: list[ServeProcess] = []
        ports: list[int] = []
        for folder in folders:  # one at a time: the first creates the keys that all share
            folder.mkdir()
            replica_config(url, keys, folder)
            replica = stack.enter_context(serve_process_at(folder))
            ports.append(int(replica.wait_ready().rsplit(":", 1)[1]))
            replicas.append(replica)
        listen, admin = free_ports(2)
        stack.enter_context(running_envoy(envoy_config(listen, admin, ports), tmp_path, admin))
        wait_healthy(admin, REPLICAS)
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
