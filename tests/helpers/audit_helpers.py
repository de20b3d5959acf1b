"""Helpers for the audit tests: real decisions from a real ruleset, logs in temporary directories."""

from __future__ import annotations

import functools
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dsl.compiler import run
from engine.audit import AuditConfig, AuditLog, AuditPaths
from engine.audit.keys import load_verifier
from engine.audit.store import Store
from engine.audit.verify import Report, verify_log
from engine.runtime.decision import Decision
from engine.runtime.evaluator import Evaluator
from engine.runtime.ids import new_id
from engine.runtime.request import Request, request_from_dict

HERE = Path(__file__).resolve().parents[1] / "audit"
RULESET = HERE / "rulesets" / "audit.pal"
SSN = "123-45-6789"
SECRET_TEXT = f"my SSN is {SSN}, please keep it"
WAIT_S = 30.0


@functools.cache
def evaluator() -> Evaluator:
    compiled = run(str(RULESET))
    assert compiled.ok and compiled.graph is not None, compiled.diagnostics
    return Evaluator(compiled.graph)


def request(text: str = SECRET_TEXT, **fields: Any) -> Request:
    base: dict[str, Any] = {
        "stage": "input",
        "text": text,
        "principal": {"id": "alice", "tenant": "acme"},
        "request_id": "req-1",
    }
    return request_from_dict(base | fields)


def decide(req: Request) -> tuple[Decision, Request]:
    return evaluator().evaluate(req), req


def open_log(data_dir: Path, **settings: Any) -> AuditLog:
    """The audit log in ``data_dir`` with ``settings``; `sync` unless they say otherwise."""
    return AuditLog.open(data_dir, AuditConfig.model_validate({"durability": "sync"} | settings))


def fill(log: AuditLog, count: int, text: str = SECRET_TEXT) -> list[str]:
    """Append ``count`` decisions on ``text``; returns their decision ids in order."""
    decision, req = decide(request(text))
    ids = [new_id() for _ in range(count)]
    for decision_id in ids:
        log.append(decision, req, decision_id)
    return ids


def make_log(data_dir: Path, count: int, **settings: Any) -> list[str]:
    """A closed log in ``data_dir`` with ``count`` more records, all signed (by the final checkpoint)."""
    with open_log(data_dir, **settings) as log:
        return fill(log, count)


def verify(data_dir: Path, public_key: Path | None = None, db: Path | None = None) -> Report:
    paths = AuditPaths.of(data_dir)
    store = Store.open_reader(db or paths.database)
    try:
        return verify_log(store, load_verifier(public_key or paths.public_key))
    finally:
        store.close()


@contextmanager
def database(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A plain read-write connection to the log's database: what an attacker with file access has."""
    conn = sqlite3.connect(AuditPaths.of(data_dir).database, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def tmpfs(mount: Path, *, read_only_after: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """A 1 MiB tmpfs at ``mount`` (skips the test where mounting is not allowed), unmounted afterwards.

    With ``read_only_after``, that function fills it first and the file system is then made read-only.
    """
    mount.mkdir()
    command, umount = shutil.which("mount"), shutil.which("umount")
    if command is None or umount is None:
        pytest.skip("no mount command here")
    tmpfs_mount = [command, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]
    made = subprocess.run(tmpfs_mount, capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    try:
        if read_only_after is not None:
            read_only_after(mount)
            subprocess.run([command, "-o", "remount,ro", str(mount)], check=True)
        yield mount
    finally:
        subprocess.run([umount, "-l", str(mount)], check=False)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (a state to reach, not a time to measure)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)
