"""A real PostgreSQL of its own for tests and benchmarks: a cluster in a temporary directory."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from engine.runtime.ids import new_id
from engine.store.postgres import migrate

# Debian's server binaries (the `postgresql` package; .ci/run installs it): the newest version there
PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
SERVER_USER = "postgres"  # initdb refuses to run as root; Debian's package creates this user
START_TIMEOUT_S = 60


def _bin(name: str) -> str:
    if not PG_BINS:
        raise AssertionError(
            "no PostgreSQL server binaries under /usr/lib/postgresql: apt-get install postgresql"
        )
    return str(PG_BINS[-1] / name)


def _run(command: list[str]) -> None:
    user = SERVER_USER if os.geteuid() == 0 else None
    done = subprocess.run(
        command, user=user, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
    )
    if done.returncode:
        raise AssertionError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running PostgreSQL cluster of its own (socket and data in a temporary directory); yields the
    URL of its `postgres` database; stopped (immediate) and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="palisade-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data = base / "data"
    try:
        _run([_bin("initdb"), "-D", str(data), "-U", "palisade", "--auth=trust", "--no-sync", "-E", "UTF8"])
        options = f"-k {base} -c listen_addresses='' -c max_connections=200"
        _run([_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"])
        try:
            yield f"postgresql://palisade@/postgres?host={base}"
        finally:
            _run([_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server_url: str, *, migrated: bool = True) -> str:
    """A new empty database on the server (its schema migrated unless told not to); returns its URL."""
    name = "t_" + new_id().replace("-", "")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    url = server_url.replace("/postgres?", f"/{name}?")
    if migrated:
        migrate(url)
    return url
