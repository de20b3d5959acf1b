"""Helpers for the telemetry tests: a `palisade serve` with [metrics] and [tracing], traffic, a scrape."""

from __future__ import annotations

import re
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from server_helpers import ROOT, serve_process, wait_for

from engine.client.guard_client import GuardClient, GuardError

RULESETS = ROOT / "tests" / "telemetry" / "rulesets"
RULESET = "telemetry_test"
_METRICS_LINE = re.compile(r"metrics on http://(\S+)/metrics")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(folder: Path, *, workers: int = 1, metrics: bool = False, tracing: bool = False) -> Path:
    """A `palisade serve` config in ``folder``: the telemetry rulesets, its own data directory."""
    lines = [
        f'rulesets = "{RULESETS}"',
        'listen = "127.0.0.1:0"',
        f'data_dir = "{folder / "data"}"',
        f"workers = {workers}",
    ]
    if metrics:
        lines += ["[metrics]", 'address = "127.0.0.1:0"']
    if tracing:
        lines += ["[tracing]", "enabled = true"]
    path = folder / "palisade.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextmanager
def served(config: Path) -> Iterator[tuple[str, str]]:
    """`palisade serve --config config`: yields its gRPC HOST:PORT and its metrics HOST:PORT ("" if off)."""
    with serve_process("--config", str(config)) as process:
        listen = process.wait_ready()
        found = [m.group(1) for line in process.stderr if (m := _METRICS_LINE.search(line))]
        yield listen, found[0] if found else ""


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text: str = response.read().decode("utf-8")
        return text


def traffic(target: str, rounds: int) -> list[str]:
    """``rounds`` of mixed Checks, each with a fresh request id, principal and text; returns those
    unique strings (none of which may appear in a label). One escalation stays pending."""
    unique: list[str] = []
    with GuardClient(target, timeout=10.0) as client:
        for i in range(rounds):
            token = uuid.uuid4().hex
            request_id, principal = f"req-{token}", f"user-{token[:12]}"
            unique += [token, request_id, principal]
            text = [f"hello {token}", f"my ssn is 123-45-6789 {token}", f"I want a refund {token}"][i % 3]
            who = {"id": principal, "tenant": f"tenant-{token[:6]}"}
            client.check(ruleset=RULESET, text=text, request_id=request_id, principal=who)
        client.check(ruleset=RULESET, stage="tool_call", tool={"name": "shell.exec"})
        with suppress(GuardError):  # NOT_FOUND: counted by status code, never by the name asked for
            client.check(ruleset=f"no_such_{uuid.uuid4().hex}", text="x")
    return unique


def wait_scraped(address: str, needle: str) -> str:
    """The exposition once it mentions ``needle``."""
    text = [""]

    def has() -> bool:
        text[0] = scrape(address)
        return needle in text[0]

    wait_for(has)
    return text[0]
