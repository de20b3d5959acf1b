"""Fixtures for the store tests: one real PostgreSQL server per session, a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.postgres_cluster import fresh_database, postgres_server


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def url(server: str) -> str:
    return fresh_database(server)
