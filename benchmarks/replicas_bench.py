"""Three `palisade serve` replicas behind Envoy: Check latency with PostgreSQL against SQLite, one run.

    .venv/bin/python -m benchmarks.replicas_bench [--rate 500] [--duration 10] [--rounds 2]

Each round starts, for each store, three replicas (one process each) and a real Envoy
(examples/deploy/envoy.yaml, ports changed) and drives the field-and-regex scenario
(benchmarks/grpc_rulesets, grpc_bench) through Envoy, open loop. PostgreSQL: a cluster of its own
started here (benchmarks/postgres_cluster.py), one database all replicas share. SQLite: one data
directory all replicas share (the approvals and audit files, as workers share them). Both with the
audit durability given (default: both `sync` and `journal`). Rows: medians over the rounds.
Results: benchmarks/REPLICAS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from benchmarks.compare import LATENCY_HEADERS, table
from benchmarks.envoy_bench import envoy_binary, wait_ready
from benchmarks.postgres_cluster import fresh_database, postgres_server
from engine.cli.bench import runner
from engine.cli.bench.loadgen import LoadGenerators
from engine.cli.bench.runner import Options, Result

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENVOY_YAML = ROOT / "examples" / "deploy" / "envoy.yaml"
READY = "palisade: ready on "
STARTUP_S = 60.0
QUANTILES = ("p50", "p90", "p95", "p99", "max")


def replica_config(folder: Path, url: str, keys: Path, durability: str) -> Path:
    """A replica's config file in ``folder``: the store (empty: SQLite), the shared keys, durability."""
    store = f'[store]\nurl = "{url}"\n\n' if url else ""
    path = folder / "palisade.toml"
    path.write_text(
        f'{store}[audit]\ndurability = "{durability}"\n'
        f'hmac_key_path = "{keys / "hmac.key"}"\nsigning_key_path = "{keys / "signing.key"}"\n',
        encoding="utf-8",
    )
    return path


def envoy_config(listen: int, admin: int, replicas: list[int]) -> dict[str, Any]:
    """examples/deploy/envoy.yaml with these ports, and nothing else changed."""
    config: dict[str, Any] = yaml.safe_load(ENVOY_YAML.read_text(encoding="utf-8"))
    config["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = listen
    hosts = config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    if len(hosts) != len(replicas):
        raise ValueError(f"{ENVOY_YAML} names {len(hosts)} replicas, not {len(replicas)}")
    for host, port in zip(hosts, replicas, strict=True):
        host["endpoint"]["address"]["socket_address"]["port_value"] = port
    return config


@contextmanager
def running_envoy(config: dict[str, Any], workdir: Path, admin: int) -> Iterator[None]:
    """A real Envoy on ``config``, ready (its admin says so) and every replica healthy; stopped after."""
    path = workdir / "envoy.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with (workdir / "envoy.log").open("wb") as log:
        command = [envoy_binary(), "-c", str(path), "--concurrency", "1", "--disable-hot-restart"]
        process = subprocess.Popen([*command, "-l", "warning"], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(admin, process)
            _wait_healthy(admin, len(_hosts(config)))
            yield
        finally:
            process.terminate()
            process.wait(10)


def _hosts(config: dict[str, Any]) -> list[Any]:
    hosts: list[Any] = config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0][
        "lb_endpoints"
    ]
    return hosts


def clusters(admin: int) -> str:
    """Envoy's /clusters page: per replica, its health and request counts."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/clusters", timeout=5) as answer:
        text: str = answer.read().decode()
    return text


def answered_by(admin: int) -> dict[int, int]:
    """Envoy's count of successful requests per replica port."""
    found = re.findall(r"^palisade::127\.0\.0\.1:(\d+)::rq_success::(\d+)$", clusters(admin), re.MULTILINE)
    return {int(port): int(count) for port, count in found}


def _wait_healthy(admin: int, count: int) -> None:
    healthy = re.compile(r"^palisade::.*::health_flags::healthy$", re.MULTILINE)
    give_up = time.monotonic() + STARTUP_S
    while len(healthy.findall(clusters(admin))) < count:
        if time.monotonic() > give_up:
            raise RuntimeError("the replicas did not all become healthy in Envoy")
        time.sleep(0.1)


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports free just now."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@contextmanager
def replica(rulesets: Path, data_dir: Path, config: Path, listen: str = "127.0.0.1:0") -> Iterator[str]:
    """One `palisade serve`; yields HOST:PORT once it is ready; SIGTERM (then SIGKILL) after."""
    command = [sys.executable, "-m", "engine.cli.main", "serve", "--rulesets", str(rulesets)]
    command += ["--listen", listen, "--data-dir", str(data_dir), "--config", str(config)]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith(READY):
                yield line.split()[3]
                break
        else:
            raise RuntimeError(f"palisade serve exited with {proc.wait()} before it was ready")
    finally:
        proc.terminate()
        try:
            proc.wait(STARTUP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_three(url: str, durability: str, options: Options) -> Result:
    """Three replicas on ``url`` (empty: SQLite in one shared data directory) behind Envoy."""
    rulesets = HERE / "grpc_rulesets"
    (subject,) = runner.subjects(str(rulesets), [str(HERE / "scenarios" / "grpc_bench.toml")])
    with tempfile.TemporaryDirectory(prefix="palisade-replicas-") as scratch, ExitStack() as stack:
        base = Path(scratch)
        config = replica_config(base, url, base, durability)
        ports = []
        for n in range(3):  # one at a time: the first creates the keys
            data_dir = base / (f"replica{n}" if url else "shared")
            ports.append(int(stack.enter_context(replica(rulesets, data_dir, config)).rsplit(":", 1)[1]))
        listen, admin = free_ports(2)
        stack.enter_context(running_envoy(envoy_config(listen, admin, ports), base, admin))
        with LoadGenerators(f"127.0.0.1:{listen}") as generators:
            return runner.bench(generators, subject, options, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replicas_bench", description=__doc__)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--durability", action="append", choices=["sync", "journal", "async"])
    args = parser.parse_args(argv)
    options = Options(args.rate, args.duration, args.warmup, 1)
    modes = args.durability or ["sync", "journal"]
    load = os.getloadavg()
    runs: dict[tuple[str, str], list[Result]] = {}
    with postgres_server() as server:
        for _ in range(args.rounds):
            for durability in modes:
                for store in ("SQLite", "PostgreSQL"):
                    url = fresh_database(server) if store == "PostgreSQL" else ""
                    runs.setdefault((store, durability), []).append(bench_three(url, durability, options))
    rows, p95 = [], {}
    for (store, durability), results in runs.items():
        stats = [r.median.latency for r in results]
        values = [statistics.median(getattr(s, q) for s in stats) for q in QUANTILES]
        errors = sum(sum(r.median.errors.values()) for r in results)
        p95[store, durability] = values[2]
        rows.append([f"3 replicas, {store}, audit `{durability}`", f"{args.rate:g}/s", *values, errors, ""])
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the start {load}")
    print("\n".join(table(LATENCY_HEADERS, rows)))
    for durability in modes:
        ratio = p95["PostgreSQL", durability] / p95["SQLite", durability]
        print(f"audit `{durability}`: PostgreSQL p95 / SQLite p95 = {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
