"""Fixtures for the client tests: a server on a free loopback port, and a client connected to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_helpers import config, running

from engine.client.guard_client import GuardClient


@pytest.fixture(scope="module")
def client() -> Iterator[GuardClient]:
    with running(config()) as server, GuardClient(f"127.0.0.1:{server.port}", timeout=10.0) as guard:
        yield guard
