"""Fixtures for the server tests: one in-process server on a free loopback port, and its clients."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from server_helpers import config, running

from engine.client.guard_client import GuardClient
from engine.server.app import GuardServer


@pytest.fixture(scope="session")
def server() -> Iterator[GuardServer]:
    with running(config()) as srv:
        yield srv


@pytest.fixture(scope="session")
def target(server: GuardServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def client(target: str) -> Iterator[GuardClient]:
    with GuardClient(target, timeout=10.0) as guard:
        yield guard


@pytest.fixture()
def channel(target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(target) as chan:
        yield chan
