"""Fixtures for the Envoy tests: a real Envoy with Palisade as its ext_proc, a local OpenAI-style upstream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from envoy_helpers import HOLD_CHARS
from openai import OpenAI

from benchmarks.envoy_bench import Ports, Script, Upstream, running_envoy, running_palisade
from engine.audit import AuditConfig
from engine.config import ServeConfig
from engine.envoy.config import EnvoyConfig
from engine.envoy.server import EnvoyServer
from engine.guard import Guard

RULESETS = Path(__file__).resolve().parent / "rulesets"
MAX_BODY_BYTES = 64 * 1024
HEADERS = {"x-user": "alice", "x-tenant": "acme", "x-roles": "dev, support", "x-channel": "web"}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("palisade")


@pytest.fixture(scope="session")
def envoy_config() -> EnvoyConfig:
    return EnvoyConfig(
        enabled=True,
        listen="127.0.0.1:0",
        ruleset="gateway",
        principal_header="x-user",
        tenant_header="x-tenant",
        roles_header="x-roles",
        metadata_headers={"channel": "x-channel"},
        max_body_bytes=MAX_BODY_BYTES,
        stream_hold_chars=HOLD_CHARS,
    )


@pytest.fixture(scope="session")
def palisade(data_dir: Path, envoy_config: EnvoyConfig) -> Iterator[tuple[Guard, EnvoyServer]]:
    serve = ServeConfig(rulesets=str(RULESETS), data_dir=str(data_dir), audit=AuditConfig(durability="sync"))
    with running_palisade(serve, envoy_config) as running:
        yield running


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture(scope="session")
def guard(palisade: tuple[Guard, EnvoyServer]) -> Guard:
    return palisade[0]


@pytest.fixture(scope="session")
def ports(
    palisade: tuple[Guard, EnvoyServer],
    envoy_config: EnvoyConfig,
    upstream: Upstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Ports]:
    chosen = Ports(palisade=palisade[1].port, upstream=upstream.port)
    with running_envoy(chosen, envoy_config, tmp_path_factory.mktemp("envoy")):
        yield chosen


@pytest.fixture(autouse=True)
def fresh_script(upstream: Upstream) -> None:
    upstream.script = Script()
    upstream.requests.clear()
    upstream.started = 0


@pytest.fixture()
def client(ports: Ports) -> Callable[..., OpenAI]:
    """An OpenAI client through one of Envoy's listeners (guarded, direct, fail_closed, fail_open)."""

    def make(listener: str = "guarded", **headers: str) -> OpenAI:
        return OpenAI(
            base_url=f"http://127.0.0.1:{ports.listeners[listener]}/v1",
            api_key="sk-test",
            max_retries=0,
            timeout=20.0,
            default_headers=HEADERS | headers,
        )

    return make
