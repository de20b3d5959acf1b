"""What issue 20's front doors add: `palisade mcp` per tools/call, and LiteLLM's guardrail API at 100/s.

Both on benchmarks/grpc_rulesets/grpc_bench.pal (field predicates and regexes), each side by side
with its baseline in the same run (benchmarks/MCP.md):
- MCP: the SDK's client calls mcp-server-time's get_current_time back to back, alternating between
  a session straight to the server and one through `palisade mcp` (a Check at tool_call and one at
  tool_result per call);
- the guardrail API: `palisade serve` with `[http]`, open loop at --rate requests/s, POSTs of
  LiteLLM's request shape and, as the baseline, GETs of the same server's /health (no Check),
  in alternating rounds; latency counted from each request's scheduled time.

    .venv/bin/python -m benchmarks.mcp_bench                      # both, audit async and sync
    .venv/bin/python -m benchmarks.mcp_bench --calls 500 --rate 100 --seconds 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from benchmarks.envoy_bench import Sample, _report, open_loop

ROOT = Path(__file__).resolve().parent.parent
RULESETS = ROOT / "benchmarks" / "grpc_rulesets"
RULESET = "grpc_bench"
BIN = Path(sys.executable).parent
GUARDRAIL_PATH = "/beta/litellm_basic_guardrail_api"
SERVING = re.compile(r"serving LiteLLM's guardrail API on (\S+)")
CALLS = [  # what LiteLLM sends for a prompt and for an answer
    {"texts": ["Can I return a laptop after 20 days? I bought it online."], "input_type": "request"},
    {
        "texts": ["Yes: within 30 days, with the receipt. Write to help@example.com."],
        "input_type": "response",
    },
]


def _config(folder: Path, durability: str, http: bool) -> Path:
    path = folder / f"palisade-{durability}.toml"
    text = f'[audit]\ndurability = "{durability}"\n'
    if http:
        table = f'[http]\nenabled = true\nlisten = "127.0.0.1:0"\nruleset = "{RULESET}"\n'
        text = f'listen = "127.0.0.1:0"\n{text}\n{table}'
    path.write_text(text, encoding="utf-8")
    return path


# --- MCP: a tools/call, straight to the server and through `palisade mcp`


def mcp_calls(durability: str, calls: int, folder: Path) -> dict[str, Any]:
    """``calls`` tools/calls on each session, alternating; the round trip of each, in ms."""
    server = [str(BIN / "mcp-server-time")]
    proxy = [
        sys.executable,
        "-m",
        "engine.cli.main",
        "mcp",
        "--ruleset",
        RULESET,
        "--rulesets",
        str(RULESETS),
    ]
    proxy += [
        "--data-dir",
        str(folder / f"mcp-{durability}"),
        "--config",
        str(_config(folder, durability, False)),
    ]
    proxy += ["--", *server]
    off, on = Sample(), Sample()

    async def run() -> None:
        async with AsyncExitStack() as stack:
            direct = await _session(stack, server)
            guarded = await _session(stack, proxy)
            for session in (direct, guarded):  # warm up: imports, the first tools/list, the caches
                for _ in range(20):
                    await _call(session)
            for _ in range(calls):
                off.latency_ms.append(await _call(direct))
                on.latency_ms.append(await _call(guarded))

    anyio.run(run)
    off.lag_ms, on.lag_ms = [0.0] * len(off.latency_ms), [0.0] * len(on.latency_ms)
    return _report(f"mcp tools/call, audit {durability}", off, on)


async def _session(stack: AsyncExitStack, command: list[str]) -> ClientSession:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=str(ROOT))
    read, write = await stack.enter_async_context(stdio_client(params))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def _call(session: ClientSession) -> float:
    started = time.perf_counter()
    result = await session.call_tool("get_current_time", {"timezone": "UTC"})
    took = (time.perf_counter() - started) * 1000
    if result.is_error:
        raise RuntimeError(f"the call failed: {result.content}")
    return took


# --- the guardrail API: LiteLLM's requests at a fixed rate, and the same server's /health


@contextmanager
def serving(durability: str, folder: Path) -> Iterator[int]:
    """`palisade serve` with `[http]` on; yields the guardrail API's port."""
    command = [sys.executable, "-m", "engine.cli.main", "serve", "--rulesets", str(RULESETS)]
    command += [
        "--data-dir",
        str(folder / f"http-{durability}"),
        "--config",
        str(_config(folder, durability, True)),
    ]
    env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        port = 0
        for line in process.stderr:
            found = SERVING.search(line)
            port = int(found.group(1).rsplit(":", 1)[1]) if found else port
            if line.startswith("palisade: ready on "):
                break
        if not port:
            raise RuntimeError("palisade serve did not start its guardrail API")
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep its pipe drained
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _guardrail(conn: http.client.HTTPConnection, i: int) -> float:
    body = json.dumps(CALLS[i % len(CALLS)] | {"request_data": {"user_api_key_user_id": "bench"}})
    started = time.perf_counter()
    conn.request("POST", GUARDRAIL_PATH, body, {"content-type": "application/json"})
    return _read(conn, started)


def _health(conn: http.client.HTTPConnection, i: int) -> float:
    started = time.perf_counter()
    conn.request("GET", "/health")
    return _read(conn, started)


def _read(conn: http.client.HTTPConnection, started: float) -> float:
    """The answer read whole; the milliseconds since ``started``."""
    answer = conn.getresponse()
    answer.read()
    if answer.status != 200:
        raise RuntimeError(f"status {answer.status}")
    return (time.perf_counter() - started) * 1000


def guardrail_api(durability: str, rate: float, seconds: float, rounds: int, folder: Path) -> dict[str, Any]:
    off, on = Sample(), Sample()
    with serving(durability, folder) as port:
        open_loop(port, _guardrail, rate, 2.0)  # warm up
        for _ in range(rounds):
            for sample, request in ((off, _health), (on, _guardrail)):
                got = open_loop(port, request, rate, seconds / rounds)
                sample.latency_ms += got.latency_ms
                sample.lag_ms += got.lag_ms
                sample.errors += got.errors
    return _report(f"guardrail API {rate:g}/s (baseline: GET /health), audit {durability}", off, on)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500, help="tools/calls on each MCP session")
    parser.add_argument("--rate", type=float, default=100.0, help="guardrail API requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="guardrail API load, each side")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of baseline and guarded load")
    parser.add_argument(
        "--durability", nargs="+", default=["journal", "async"], choices=["journal", "async", "sync"]
    )
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="palisade-mcp-bench-") as tmp:
        for durability in args.durability:
            rows.append(mcp_calls(durability, args.calls, Path(tmp)))
            rows.append(guardrail_api(durability, args.rate, args.seconds, args.rounds, Path(tmp)))
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load": os.getloadavg()}
    print(json.dumps({"machine": machine, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
