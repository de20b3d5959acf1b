"""PostgreSQL as the shared store: migrations, one audit log for replicas (verify, tamper), approvals."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from audit_helpers import fill, open_log
from server_helpers import HERE as SERVER_TESTS
from server_helpers import serve_process

from benchmarks.postgres_cluster import fresh_database
from engine.audit import AuditConfig, AuditLog, AuditPaths, AuditUnavailable
from engine.audit.keys import load_verifier
from engine.audit.pg_store import PgStore
from engine.audit.verify import Report, verify_log
from engine.client.guard_client import CheckResult, GuardClient
from engine.store.postgres import SCHEMA_VERSION, migrate

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
APPROVAL_RULESETS = SERVER_TESTS / "approval_rulesets"
AGENT = {"id": "agent-7", "tenant": "acme"}


def verify_pg(url: str, data_dir: Path) -> Report:
    store = PgStore.connect(url)
    try:
        return verify_log(store, load_verifier(AuditPaths.of(data_dir).public_key))
    finally:
        store.close()


def palisade(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "engine.cli.main", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_migrate_creates_the_schema_once_and_servers_refuse_other_versions(
    server: str, tmp_path: Path
) -> None:
    url = fresh_database(server, migrated=False)
    with pytest.raises(AuditUnavailable, match=r"schema version 0.*palisade store migrate"):
        AuditLog.open(tmp_path, AuditConfig(durability="sync"), store_url=url)
    first = palisade("store", "migrate", "--url", url)
    assert first.returncode == 0, first.stderr
    assert f"from version 0 to {SCHEMA_VERSION}" in first.stdout
    assert migrate(url) == (SCHEMA_VERSION, SCHEMA_VERSION)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO palisade_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(AuditUnavailable, match="newer than this Palisade knows"):
        AuditLog.open(tmp_path, AuditConfig(durability="sync"), store_url=url)
    refused = palisade("store", "migrate", "--url", url)
    assert refused.returncode == 2 and "newer than this Palisade knows" in refused.stderr


@pytest.mark.parametrize("durability", ["sync", "journal"])
def test_two_logs_on_one_database_make_one_chain_that_verifies(
    url: str, tmp_path: Path, durability: str
) -> None:
    config = AuditConfig(durability=durability, checkpoint_every_records=7)
    first = AuditLog.open(tmp_path, config, store_url=url)  # two replicas sharing the keys
    second = AuditLog.open(tmp_path, config, store_url=url)
    threads = [threading.Thread(target=fill, args=(log, 40)) for log in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first.close()
    second.close()
    report = verify_pg(url, tmp_path)
    assert report.ok, report.problem
    assert report.records == 160 and report.signed == 160
    done = palisade("audit", "verify", "--store", url, "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "160 record(s)" in done.stdout


def test_tampering_in_the_database_is_caught(url: str, tmp_path: Path) -> None:
    with AuditLog.open(
        tmp_path, AuditConfig(durability="sync", checkpoint_every_records=10), store_url=url
    ) as log:
        fill(log, 25)
    with psycopg.connect(url, autocommit=True) as conn:
        edit = 'replace(body, \'"outcome":"block"\', \'"outcome":"allow"\')'
        conn.execute(f"UPDATE records SET body = {edit} WHERE seq = 12".encode())
    report = verify_pg(url, tmp_path)
    assert not report.ok and "record 12" in report.summary()
    done = palisade("audit", "verify", "--store", url, "--data-dir", str(tmp_path))
    assert done.returncode == 1 and "record 12" in done.stderr


def test_the_sqlite_default_is_unchanged(tmp_path: Path) -> None:
    with open_log(tmp_path) as log:
        fill(log, 3)
    assert AuditPaths.of(tmp_path).database.is_file()


RACES = 5


def test_two_replicas_race_to_resume_one_approval_exactly_one_allows(url: str, tmp_path: Path) -> None:
    settings = tmp_path / "replica.toml"
    settings.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
    args = ["--rulesets", str(APPROVAL_RULESETS), "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)]
    with serve_process(*args, "--config", str(settings)) as first:
        a = first.wait_ready()  # the first creates the keys that both use
        with serve_process(*args, "--config", str(settings)) as second:
            b = second.wait_ready()
            with GuardClient(a, timeout=10.0) as one, GuardClient(b, timeout=10.0) as other:
                for n in range(RACES):
                    tool = {"name": "shell.exec", "arguments": {"cmd": f"rm -rf build-{n}/"}}
                    opened = call(one, tool)
                    assert opened.escalation is not None
                    approval_id = opened.escalation.approval_id
                    assert other.get_approval(approval_id).state.name == "PENDING"  # B sees A's
                    other.resolve_approval(approval_id, approve=True, approver="alice")
                    resumes = [functools.partial(call, c, tool, approval_id) for c in (one, other)]
                    outcomes = [result.outcome.name for result in race(resumes)]
                    assert sorted(outcomes) == ["ALLOW", "BLOCK"]
    report = verify_pg(url, tmp_path)
    assert report.ok, report.summary()


def call(client: GuardClient, tool: dict[str, Any], approval_id: str = "") -> CheckResult:
    return client.check(
        ruleset="approvals_test", stage="tool_call", tool=tool, principal=AGENT, approval_id=approval_id
    )


def race(calls: list[Callable[[], CheckResult]]) -> list[CheckResult]:
    """Run ``calls`` at once (released together by a barrier); their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[CheckResult | None] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def test_prune_and_query_work_on_the_shared_store(url: str, tmp_path: Path) -> None:
    with AuditLog.open(
        tmp_path, AuditConfig(durability="sync", checkpoint_every_records=10), store_url=url
    ) as log:
        fill(log, 25)
    pruned = palisade("audit", "prune", "--store", url, "--max-records", "10")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 10 record(s)" in pruned.stdout  # cut at the checkpoint of 10: 15 kept, at least 10
    assert verify_pg(url, tmp_path).ok
    listed = palisade("audit", "query", "--store", url)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 15
