"""Open-loop gRPC load: arrivals on a fixed schedule, sent from sender threads in separate processes."""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from types import TracebackType
from typing import NamedTuple, TypeAlias

import grpc

from engine.client.guard_client import open_channel
from engine.client.tls import ClientTls
from engine.protocol.wire import CHECK_METHOD

READY = "palisade: ready on "
CALL_TIMEOUT_S = 5.0
START_DELAY_S = 0.3  # from sending a schedule to its first arrival: every process has it by then
_CTX = multiprocessing.get_context("spawn")
Call: TypeAlias = "grpc.UnaryUnaryMultiCallable[bytes, bytes]"  # subscriptable in grpc-stubs only


class Sample(NamedTuple):
    """One arrival: times in seconds from its scheduled send time; the raw reply, b"" on error."""

    arrival: int
    latency_s: float  # scheduled time to reply (or to the error)
    lag_s: float  # how late the sender itself sent: part of the latency
    code: str  # "OK" or the gRPC status name
    reply: bytes


@dataclass(frozen=True, slots=True)
class Schedule:
    """Arrivals first .. first + count - 1 at ``rate`` per second from ``start``; this sender's share."""

    start: float  # time of arrival ``first`` (perf_counter, or time.time() between processes)
    rate: float
    first: int
    count: int
    share: int = 0  # this process takes the arrivals i with (i - first) % shares == share
    shares: int = 1

    def arrivals(self) -> range:
        return range(self.first + self.share, self.first + self.count, self.shares)

    def time(self, index: int) -> float:
        return self.start + (index - self.first) / self.rate


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(round(q * len(sorted_values) / 100, 9)) - 1, 0)  # round: 99.9% of 1000 is 999
    return sorted_values[rank]


def elapsed_s(samples: Sequence[Sample], rate: float, first: int) -> float:
    """From the first scheduled arrival until the last reply."""
    return max(((s.arrival - first) / rate + s.latency_s for s in samples), default=0.0)


# Servers, each in its own process


@dataclass(frozen=True, slots=True)
class Server:
    target: str  # HOST:PORT
    pid: int


@contextmanager
def server_process(command: list[str]) -> Iterator[Server]:
    """Start a server; yield it once it prints the ready line; SIGTERM it afterwards."""
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        for line in proc.stderr:
            if line.startswith(READY):
                threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
                yield Server(line.split()[3], proc.pid)
                break
            seen.append(line)
        else:
            tail = "".join(seen[-20:])
            raise RuntimeError(f"server exited with {proc.wait()} before it was ready:\n{tail}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def palisade_server(rulesets: str, data_dir: str, workers: int = 1, config: str | None = None) -> list[str]:
    """`palisade serve` on a free loopback port (with a --config file's further settings)."""
    return [
        sys.executable, "-m", "engine.cli.main", "serve", "--rulesets", rulesets,
        "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--workers", str(workers),
    ] + (["--config", config] if config else [])  # fmt: skip


# Clients


@contextmanager
def callers(target: str, connections: int, tls: ClientTls | None = None) -> Iterator[list[Call]]:
    """Raw-bytes Check callables, one TCP connection each (so SO_REUSEPORT can spread them); over
    TLS when ``tls`` is given."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [open_channel(target, options, tls) for _ in range(connections)]
    try:
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield [channel.unary_unary(CHECK_METHOD, None, None) for channel in channels]  # raw bytes
    finally:
        for channel in channels:
            channel.close()


def _code(exc: grpc.RpcError) -> str:
    return exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"


def open_loop(calls: list[Call], requests: Sequence[bytes], schedule: Schedule, senders: int) -> list[Sample]:
    """Send this process's share of the schedule; each latency counts from the scheduled time.

    Arrival j of the share belongs to sender thread j % senders, which sleeps until the arrival's
    time and makes a blocking call (cheaper in grpcio than futures). A sender still busy with an
    earlier call sends late, and that lateness counts in the latency, so slow answers are not hidden.
    Arrival i sends requests[i % len(requests)].
    """
    mine = schedule.arrivals()
    samples: list[Sample | None] = [None] * len(mine)

    def send(thread: int) -> None:
        call = calls[thread % len(calls)]
        for j in range(thread, len(mine), senders):
            index = mine[j]
            scheduled = schedule.time(index)
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            try:
                reply, code = call(requests[index % len(requests)], timeout=CALL_TIMEOUT_S), "OK"
            except grpc.RpcError as exc:
                reply, code = b"", _code(exc)
            samples[j] = Sample(index, time.perf_counter() - scheduled, sent - scheduled, code, reply)

    threads = [threading.Thread(target=send, args=(k,), daemon=True) for k in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [s for s in samples if s is not None]


# Load-generator processes


def _generator(conn: Connection, target: str, connections: int, senders: int, tls: ClientTls | None) -> None:
    """A load-generator process: takes ("requests", [bytes]) and ("run", Schedule) until None."""
    requests: list[bytes] = []
    with callers(target, connections, tls) as calls:
        conn.send("ready")
        while (message := conn.recv()) is not None:
            kind, payload = message
            if kind == "requests":
                requests = payload
                conn.send("loaded")
                continue
            offset = time.perf_counter() - time.time()  # the schedule's start is wall-clock time
            local = replace(payload, start=payload.start + offset)
            conn.send(open_loop(calls, requests, local, senders))


class LoadGenerators:
    """``processes`` load-generator processes, each with its own connections and sender threads."""

    def __init__(
        self,
        target: str,
        processes: int = 2,
        connections: int = 2,
        senders: int = 16,
        tls: ClientTls | None = None,
    ) -> None:
        self._pipes: list[Connection] = []
        self._procs: list[SpawnProcess] = []
        for _ in range(processes):
            mine, theirs = _CTX.Pipe()
            args = (theirs, target, connections, senders, tls)
            proc = _CTX.Process(target=_generator, args=args, daemon=True)
            proc.start()
            theirs.close()  # the child has its own copy: if it dies, recv() here gets EOFError
            self._pipes.append(mine)
            self._procs.append(proc)
        if not self._replied("ready"):
            self.close(now=True)
            hint = "" if tls else " (a server that speaks TLS needs --tls or --tls-ca)"
            raise RuntimeError(f"a load generator could not connect to {target}{hint}")

    def _replied(self, word: str) -> bool:
        try:
            return all(pipe.recv() == word for pipe in self._pipes)
        except EOFError:  # the process died
            return False

    def load(self, requests: list[bytes]) -> None:
        """The request pool: arrival i sends requests[i % len(requests)]."""
        for pipe in self._pipes:
            pipe.send(("requests", requests))
        if not self._replied("loaded"):
            raise RuntimeError("a load generator died")

    def run(self, rate: float, first: int, count: int) -> list[Sample]:
        """Arrivals first .. first + count - 1 at ``rate`` per second over all processes, in order."""
        start, shares = time.time() + START_DELAY_S, len(self._pipes)
        for share, pipe in enumerate(self._pipes):
            pipe.send(("run", Schedule(start, rate, first, count, share, shares)))
        samples = [s for pipe in self._pipes for s in pipe.recv()]
        return sorted(samples, key=lambda s: s.arrival)

    def close(self, now: bool = False) -> None:
        """Stop the processes: once they finish their phase, or ``now`` (after an error, Ctrl-C)."""
        for pipe, proc in zip(self._pipes, self._procs, strict=True):
            if now:
                proc.terminate()
            else:
                pipe.send(None)
        for proc in self._procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()

    def __enter__(self) -> LoadGenerators:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(now=kind is not None)
