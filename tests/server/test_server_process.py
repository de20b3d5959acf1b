"""`palisade serve` as a process: start, refuse bad rulesets, graceful shutdown, workers, `palisade ask`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from server_helpers import (
    BAD_RULESETS,
    ROOT,
    RULESETS,
    is_worker,
    serve_process,
    wait_for,
    worker_pids,
)

from dsl.types import Outcome
from engine.client.guard_client import GuardClient, GuardError

SLOW_TEXT = "123456789" + "a" * 40 + "!"


def serve_args(tmp_path: Path, *extra: str) -> list[str]:
    data = tmp_path / "data"
    return ["--rulesets", str(RULESETS), "--listen", "127.0.0.1:0", "--data-dir", str(data), *extra]


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "palisade.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def ask(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "engine.cli.main", "ask", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_serve_answers_and_ask_prints_the_decision(tmp_path: Path) -> None:
    with serve_process(*serve_args(tmp_path)) as server:
        target = server.wait_ready()
        assert (tmp_path / "data").is_dir()
        pinned = ("--ruleset", "server_test", "--version", "1.0.0")
        text = ask("--server", target, *pinned, "--text", "123-45-6789")
        assert text.returncode == 0, text.stderr
        assert json.loads(text.stdout)["outcome"] == "block"
        request = {"ruleset": "server_test", "stage": "tool_call", "tool": {"name": "db.drop_table"}}
        tool = ask("--server", target, "--version", "1.0.0", "--request", json.dumps(request))
        assert tool.returncode == 0, tool.stderr
        decision = json.loads(tool.stdout)
        assert decision["outcome"] == "escalate" and decision["escalation"]["queue"] == "sre-oncall"
        missing = ask("--server", target, "--ruleset", "nope", "--text", "hi")
        assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


def test_ask_rejects_a_malformed_request_locally() -> None:
    result = ask("--ruleset", "x", "--request", '{"stage": "sideways"}')
    assert result.returncode == 2 and "stage" in result.stderr


def test_serve_refuses_to_start_on_a_bad_ruleset_and_prints_every_diagnostic(tmp_path: Path) -> None:
    args = ["--rulesets", str(BAD_RULESETS), "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)]
    with serve_process(*args) as server:
        assert server.wait() == 1
        output = server.output()
    assert "error[P200]" in output and "error[P403]" in output
    assert "broken.pal:4:10" in output and "refusing to start: 2 error(s)" in output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rulesets", "no/such/dir"], "does not exist"),
        (["--listen", "nonsense"], "listen"),
        (["--workers", "0"], "workers"),
    ],
)
def test_serve_refuses_bad_settings(tmp_path: Path, args: list[str], expected: str) -> None:
    with serve_process(*serve_args(tmp_path), *args) as server:
        assert server.wait() != 0
        assert expected in server.output()


def test_a_second_server_on_a_taken_port_refuses_to_start(tmp_path: Path) -> None:
    with serve_process(*serve_args(tmp_path)) as first:
        target = first.wait_ready()
        with serve_process(*serve_args(tmp_path), "--listen", target) as second:
            assert second.wait() == 1
            assert "cannot bind" in second.output()


def test_sigterm_finishes_the_calls_in_flight_then_exits_zero(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "regex_timeout_ms = 150\nshutdown_grace_s = 30\n")
    with serve_process(*serve_args(tmp_path, "--config", cfg)) as server:
        target = server.wait_ready()
        with GuardClient(target, timeout=30) as client, ThreadPoolExecutor(4) as pool:
            client.check(ruleset="server_test", text="warm the channel up")
            calls = [pool.submit(client.check, ruleset="slow_test", text=SLOW_TEXT) for _ in range(4)]
            time.sleep(0.5)  # the calls take 9 x 150 ms each; they are in flight now
            server.signal(signal.SIGTERM)
            results = [call.result() for call in calls]
            assert server.wait() == 0
            with pytest.raises(GuardError) as after:
                client.check(ruleset="server_test", text="too late", timeout=5)
        assert [r.outcome for r in results] == [Outcome.BLOCK] * 4
        assert all(len(r.errors) == 9 for r in results)
        assert after.value.code is grpc.StatusCode.UNAVAILABLE
        assert "received SIGTERM" in server.output()


def test_sigint_also_shuts_down_cleanly(tmp_path: Path) -> None:
    with serve_process(*serve_args(tmp_path)) as server:
        server.wait_ready()
        server.signal(signal.SIGINT)
        assert server.wait() == 0


def test_several_workers_share_the_port_and_replace_a_dead_one(tmp_path: Path) -> None:
    with serve_process(*serve_args(tmp_path, "--workers", "2")) as server:
        target = server.wait_ready()
        assert "(2 worker(s))" in "".join(server.stderr)
        pids = worker_pids(server)
        assert len(pids) == 2
        with GuardClient(target, timeout=30) as client:
            outcomes = {client.check(ruleset="server_test", text=f"hello {i}").outcome for i in range(20)}
            assert outcomes == {Outcome.ALLOW}
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: "".join(server.stderr).count(" serving ") == 3)  # a replacement serves
            assert len(worker_pids(server) - {victim}) == 2
            outcomes = {client.check(ruleset="server_test", text=f"again {i}").outcome for i in range(20)}
            assert outcomes == {Outcome.ALLOW}
        server.signal(signal.SIGTERM)
        assert server.wait() == 0, server.output()


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    with serve_process(*serve_args(tmp_path, "--workers", "2")) as server:
        server.wait_ready()
        pids = worker_pids(server)
        server.signal(signal.SIGKILL)
        server.wait()
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() and is_worker(pid) for pid in pids))


def test_the_other_commands_do_not_load_grpc() -> None:
    code = "import sys, engine.cli.main; sys.exit('grpc' in sys.modules or 'engine.protocol' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60, check=False).returncode == 0


def test_the_supervisor_checks_the_rulesets_without_loading_a_model(tmp_path: Path) -> None:
    """Before starting workers the supervisor checks the shipped rulesets; only the workers load
    their models (the classifier's onnxruntime library is mapped in each worker, not in it)."""
    args = ["--rulesets", str(ROOT / "rulesets"), "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)]
    with serve_process(*args, "--workers", "2") as server:
        server.wait_ready()
        workers = worker_pids(server)
        assert len(workers) == 2

        def maps(pid: int) -> str:
            return Path(f"/proc/{pid}/maps").read_text()

        assert all("onnxruntime" in maps(pid) for pid in workers)
        assert "onnxruntime" not in maps(server.proc.pid)
