"""Rollout plans: per ruleset, the active version, a shadow, a canary share; their file; and routing."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.runtime.request import Principal, quoted

ROLLOUT_FILE = "rollout.json"  # in the data directory: a setting that a reload reads, not a ruleset edit
MAX_FILE_BYTES = 256 * 1024
_BUCKETS = 10_000  # canary shares are set to 0.01%


class RolloutError(ValueError):
    """The rollout file cannot be read, or a plan names what is not loaded; the message says where."""


class Role(StrEnum):
    """Which version answered a Check, and why."""

    ACTIVE = "active"
    CANARY = "canary"
    PINNED = "pinned"


@dataclass(frozen=True, slots=True)
class Plan:
    """One ruleset's rollout: ``active`` answers (""; the highest loaded version), ``canary`` answers
    ``canary_percent`` of principals instead, ``shadow`` is evaluated beside the answer and never
    enforces. ``revision`` grows by one with every change (`palisade rollout`)."""

    active: str = ""
    shadow: str = ""
    canary: str = ""
    canary_percent: float = 0.0
    revision: int = 0

    def data(self) -> dict[str, Any]:
        return asdict(self)


def rollout_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the rollout plans of a data directory live."""
    return Path(data_dir) / ROLLOUT_FILE


def load_plans(path: Path) -> dict[str, Plan]:
    """The plans in ``path`` by ruleset name ({} when the file does not exist). Raises RolloutError."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RolloutError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise RolloutError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RolloutError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RolloutError(f"{path}: expected an object of ruleset names")
    return {str(name): _plan(path, str(name), value) for name, value in data.items()}


def _plan(path: Path, name: str, value: Any) -> Plan:
    where = f"{path}: {name}"
    if not isinstance(value, dict):
        raise RolloutError(f"{where}: expected an object")
    known = {f.name: f.type for f in fields(Plan)}
    for key, item in value.items():
        if key not in known:
            raise RolloutError(f"{where}.{key}: unknown setting (known: {', '.join(known)})")
        if key == "canary_percent":
            ok = isinstance(item, int | float) and not isinstance(item, bool) and 0 <= item <= 100
        elif key == "revision":
            ok = isinstance(item, int) and not isinstance(item, bool) and item >= 0
        else:
            ok = isinstance(item, str) and len(item) <= 100
        if not ok:
            raise RolloutError(f"{where}.{key}: invalid value {item!r}")
    plan = Plan(**value)
    if plan.canary_percent and not plan.canary:
        raise RolloutError(f"{where}: canary_percent {plan.canary_percent} without a canary version")
    return plan


def save_plans(path: Path, plans: Mapping[str, Plan]) -> None:
    """Write ``plans`` to ``path`` atomically (a reader sees the old file or the new one, whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({name: plans[name].data() for name in sorted(plans)}, indent=2) + "\n"
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def check_plans(plans: Mapping[str, Plan], loaded: set[tuple[str, str]]) -> None:
    """Raise RolloutError naming the first plan version that no loaded ruleset has."""
    for name, plan in sorted(plans.items()):
        for role in ("active", "shadow", "canary"):
            version = getattr(plan, role)
            if version and (name, version) not in loaded:
                raise RolloutError(
                    f"rollout: {name}.{role} names version {quoted(version)}, which is not loaded"
                )


def canary_bucket(name: str, principal: Principal) -> float:
    """A stable point in [0, 100) for ``principal`` in ruleset ``name``: the same user (the tenant when
    the principal has no id) always lands at the same point, so sees one version."""
    who = principal.id or f"tenant:{principal.tenant}"
    digest = hashlib.sha256(f"{name}\x00{principal.tenant}\x00{who}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS * 100 / _BUCKETS


def in_canary(name: str, plan: Plan, principal: Principal) -> bool:
    """True when ``principal`` is in ``plan``'s canary share."""
    if not plan.canary or not math.isfinite(plan.canary_percent) or plan.canary_percent <= 0:
        return False
    return canary_bucket(name, principal) < plan.canary_percent


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Order versions like "2.10.0" > "2.9.1": numeric parts numerically, the rest as text."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.replace("-", ".").split("."))
