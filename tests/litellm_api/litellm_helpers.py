"""Helpers for the LiteLLM guardrail API tests: `palisade serve` with `[http]` on, and its address."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
