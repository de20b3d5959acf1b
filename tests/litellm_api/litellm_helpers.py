"""Helpers for the LiteLLM guardrail API tests: `palisade serve` with `[http]` on, and its address."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from server_helpers import ServeProcess

HERE = Path(__file__).resolve().parent
RULESETS = HERE / "rulesets"
SERVING = re.compile(r"serving LiteLLM's guardrail API on (\S+)")


def serve_config(data_dir: Path) -> Path:
    """A `palisade serve` config with the test rulesets and `[http]` on a port of its choosing."""
    path = data_dir / "serve.toml"
    path.write_text(
        f'rulesets = "{RULESETS}"\ndata_dir = "{data_dir}"\nlisten = "127.0.0.1:0"\n\n'
        '[http]\nenabled = true\nlisten = "127.0.0.1:0"\nruleset = "llm_gateway"\n',
        encoding="utf-8",
    )
    return path


@contextmanager
def serving(data_dir: Path) -> Iterator[str]:
    """`palisade serve` with `[http]` on; yields the guardrail API's base URL."""
    process = ServeProcess("--config", str(serve_config(data_dir)))
    try:
        process.wait_ready()
        yield f"http://{_address(process)}"
    finally:
        process.close()


def _address(process: ServeProcess) -> str:
    for _ in range(100):
        for line in process.stderr:
            found = SERVING.search(line)
            if found:
                return found.group(1)
        time.sleep(0.05)
    raise AssertionError("no guardrail API address in:\n" + "".join(process.stderr))


LITELLM = "litellm[proxy]==1.106.12"  # the newest whose proxy extras the registry serves whole
LITELLM_START_S = 120.0
MASTER_KEY = "sk-" + secrets.token_hex(32)  # LiteLLM refuses to start without one; clients send it


def litellm_venv() -> Path:
    """A virtual environment with LiteLLM's proxy (its pins clash with ours), built once and cached
    in $PALISADE_LITELLM_VENV or ~/.cache/palisade/ (.ci/run builds it before the tests)."""
    default = Path.home() / ".cache" / "palisade" / f"litellm-{LITELLM.split('==')[1]}"
    venv = Path(os.environ.get("PALISADE_LITELLM_VENV") or default)
    stamp = venv / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", LITELLM]
        done = subprocess.run(pip, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"cannot install {LITELLM}:\n{done.stderr[-2000:]}"
        stamp.touch()
    return venv


def litellm_config(folder: Path, upstream_port: int, palisade_url: str, fallback: str) -> Path:
    """LiteLLM's proxy config: one model on the local upstream, Palisade its guardrail before and
    after each call (``fallback``: what LiteLLM does when Palisade cannot be reached)."""
    config = {
        "general_settings": {"master_key": MASTER_KEY},
        "model_list": [
            {
                "model_name": "test-model",
                "litellm_params": {
                    "model": "openai/test-model",
                    "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                    "api_key": "sk-upstream",
                },
            }
        ],
        "guardrails": [
            {
                "guardrail_name": "palisade",
                "litellm_params": {
                    "guardrail": "generic_guardrail_api",
                    "mode": ["pre_call", "post_call"],
                    "api_base": palisade_url,
                    "default_on": True,
                    "unreachable_fallback": fallback,
                    "additional_provider_specific_params": {"ruleset": "llm_gateway"},
                },
            }
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "litellm.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


@contextmanager
def litellm_proxy(venv: Path, config: Path, port: int) -> Iterator[str]:
    """LiteLLM's proxy on ``port`` with ``config``; yields its OpenAI base URL once it answers."""
    command = [
        str(venv / "bin" / "litellm"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = (config.parent / "litellm.log").open("w")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"LITELLM_LOG": "ERROR"}
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=config.parent)
    try:
        _wait_healthy(proc, f"http://127.0.0.1:{port}", config.parent / "litellm.log")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    give_up = time.monotonic() + LITELLM_START_S
    while time.monotonic() < give_up:
        if proc.poll() is not None:
            raise AssertionError(f"LiteLLM exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health/liveliness", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"LiteLLM did not start:\n{log.read_text()[-3000:]}")
