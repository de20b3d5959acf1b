"""SIGHUP reloads the rulesets of a running `palisade serve`; a bad ruleset never replaces a good one."""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from server_helpers import ServeProcess, serve_process, wait_for, worker_pids

from dsl.types import Outcome
from engine.client.guard_client import GuardClient

RULESET = """ruleset reload_test version "{version}" {{
  owner "tests@example.com"
  default allow

  rule words on input {{
    when "{word}" in content then block "no {word}"
  }}
}}
"""
BROKEN = """ruleset reload_test version "3.0.0" {
  owner "tests@example.com"
  rule r on input { when nope(content) then block "x" }
}
"""


def write_ruleset(folder: Path, version: str, word: str) -> None:
    (folder / "reload.pal").write_text(RULESET.format(version=version, word=word), encoding="utf-8")


def start(tmp_path: Path, *extra: str) -> tuple[Path, list[str]]:
    rulesets = tmp_path / "rulesets"
    rulesets.mkdir()
    write_ruleset(rulesets, "1.0.0", "apple")
    return rulesets, [
        "--rulesets",
        str(rulesets),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(tmp_path / "data"),
        *extra,
    ]


def served(target: str, text: str) -> tuple[str, Outcome]:
    """The version and outcome of one Check on a new connection (so, with workers, any worker)."""
    with GuardClient(target, timeout=30) as client:
        decision = client.check(ruleset="reload_test", text=text)
    return decision.version, decision.outcome


def reloads(server: ServeProcess) -> int:
    return server.log().count("reloaded 1 ruleset(s): reload_test")


def test_sighup_serves_the_new_version_and_a_broken_one_changes_nothing(tmp_path: Path) -> None:
    rulesets, args = start(tmp_path)
    with serve_process(*args) as server:
        target = server.wait_ready()
        assert served(target, "an apple") == ("1.0.0", Outcome.BLOCK)

        write_ruleset(rulesets, "2.0.0", "pear")
        server.signal(signal.SIGHUP)
        wait_for(lambda: reloads(server) == 1)
        assert served(target, "an apple") == ("2.0.0", Outcome.ALLOW)
        assert served(target, "a pear") == ("2.0.0", Outcome.BLOCK)
        assert "without a new version" not in "".join(server.stderr)  # a new version: no warning

        write_ruleset(rulesets, "2.0.0", "plum")  # other rules under the same version: served, with a warning
        server.signal(signal.SIGHUP)
        wait_for(lambda: reloads(server) == 2)
        wait_for(lambda: "reload_test 2.0.0 changed without a new version" in "".join(server.stderr))
        assert served(target, "a plum") == ("2.0.0", Outcome.BLOCK)

        (rulesets / "reload.pal").write_text(BROKEN, encoding="utf-8")
        server.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in "".join(server.stderr))
        log = "".join(server.stderr)
        assert "reload.pal:3:" in log and "^" in log  # the diagnostic, with its place and caret
        assert served(target, "a plum") == ("2.0.0", Outcome.BLOCK)

        (rulesets / "reload.pal").unlink()
        server.signal(signal.SIGHUP)
        wait_for(lambda: "no .pal ruleset found" in "".join(server.stderr))
        assert served(target, "a plum") == ("2.0.0", Outcome.BLOCK)

        server.signal(signal.SIGTERM)
        assert server.wait() == 0, server.output()
    assert reloads(server) == 2


def test_sighup_to_the_supervisor_reloads_every_worker(tmp_path: Path) -> None:
    rulesets, args = start(tmp_path, "--workers", "2")
    with serve_process(*args) as server:
        target = server.wait_ready()
        assert len(worker_pids(server)) == 2
        write_ruleset(rulesets, "2.0.0", "pear")
        server.signal(signal.SIGHUP)
        wait_for(lambda: reloads(server) == 2)  # one line from each worker
        assert {served(target, f"a pear {i}") for i in range(12)} == {("2.0.0", Outcome.BLOCK)}
        server.signal(signal.SIGTERM)
        assert server.wait() == 0, server.output()


def test_calls_during_reloads_all_get_an_answer(tmp_path: Path) -> None:
    rulesets, args = start(tmp_path)
    with serve_process(*args) as server:
        target = server.wait_ready()
        stop, versions = threading.Event(), set()

        def call() -> None:  # one connection, calls back to back: any failure raises in the test
            with GuardClient(target, timeout=30) as client:
                while not stop.is_set():
                    versions.add(client.check(ruleset="reload_test", text="a pear").version)

        with ThreadPoolExecutor(2) as pool:
            callers = [pool.submit(call) for _ in range(2)]
            try:
                for number in range(2, 7):
                    write_ruleset(rulesets, f"{number}.0.0", "pear")
                    server.signal(signal.SIGHUP)
                    wait_for(lambda n=number: reloads(server) == n - 1, context=server.log)
            finally:  # a failed wait must not leave the callers running (the pool would wait forever)
                stop.set()
            for caller in callers:
                caller.result(timeout=60)
        assert "6.0.0" in versions and len(versions) >= 2
