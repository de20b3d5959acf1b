"""Each MCP tool as first listed: a digest of its definition per server, kept across sessions in a file."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("palisade.mcp")
MAX_TOOLS = 10_000  # pins kept per server; past that, new tools are compared within the session only


class Pins:
    """Tool name -> digest of its definition when first seen, read from and written to ``path``
    (None: this session only). A file that cannot be read starts empty, and says so: every tool is
    then new, never silently trusted as unchanged."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.digests: dict[str, str] = _read(path) if path is not None else {}

    def changed(self, name: str, digest: str) -> bool:
        """Whether ``name`` was first seen with another definition; pins it if it is new."""
        known = self.digests.get(name)
        if known is not None:
            return known != digest
        if len(self.digests) < MAX_TOOLS:
            self.digests[name] = digest
            self._write()
        return False

    def _write(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".partial")
            partial.write_text(json.dumps(self.digests, sort_keys=True), encoding="utf-8")
            os.replace(partial, self.path)
        except OSError as exc:
            log.warning("cannot keep the MCP tool pins in %s: %s", self.path, exc.strerror)


def pins_path(data_dir: str, server: str) -> Path:
    """Where the pins of ``server`` live in ``data_dir`` (one file per server name)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in server) or "_default"
    return Path(data_dir) / "mcp" / f"{safe}.tools.json"


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("cannot read the MCP tool pins in %s (%s): every tool is new", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}
