"""Warm-up in the server: a detector that fails it stops a start, or a reload, before anything is served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from server_helpers import config, running, serve_process

from detectors.catalogue import resolve
from dsl.types import Stage
from engine.runtime.request import Request
from engine.server.app import GuardServer

RULESET = """ruleset warm_test version "{version}" {{
  owner "tests@example.com"
  default allow
  detector inj = classifier(model: "{model}")
  rule injection on input {{
    when inj(content).found then block "injection"
  }}
}}
"""


def too_wide_model(folder: Path) -> Path:
    """The shipped classifier, configured for 1,024-token windows: more positions than it has (512)."""
    model = folder / "model"
    shutil.copytree(resolve("prompt-injection").path, model)
    settings = json.loads((model / "config.json").read_text(encoding="utf-8"))
    (model / "config.json").write_text(json.dumps(settings | {"max_length": 1024}), encoding="utf-8")
    return model


def write_ruleset(folder: Path, version: str, model: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "warm.pal").write_text(RULESET.format(version=version, model=model), encoding="utf-8")
    return folder


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_to_start_when_a_detector_fails_its_warm_up(tmp_path: Path, workers: str) -> None:
    rulesets = write_ruleset(tmp_path / "rulesets", "1.0.0", str(too_wide_model(tmp_path)))
    args = ["--rulesets", str(rulesets), "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")]
    with serve_process(*args, "--workers", workers) as server:
        assert server.wait() == 1
        output = server.output()
    assert "palisade: ready" not in output
    assert "refusing to start:" in output
    assert "ruleset warm_test 1.0.0: detector inj (classifier) failed its warm-up" in output


def test_a_reload_whose_warm_up_fails_is_refused_before_anything_is_served(tmp_path: Path) -> None:
    rulesets = write_ruleset(tmp_path / "rulesets", "1.0.0", "prompt-injection")
    with running(config(rulesets=str(rulesets))) as server:
        before = server.registry
        write_ruleset(rulesets, "2.0.0", str(too_wide_model(tmp_path)))
        assert not server.reload()
        assert server.registry is before
        assert served_version(server) == "1.0.0"
        write_ruleset(rulesets, "3.0.0", "prompt-injection")
        assert server.reload()
        assert served_version(server) == "3.0.0"


def served_version(server: GuardServer) -> str:
    return server.guard.check("warm_test", Request(stage=Stage.INPUT, text="hello")).decision.version
