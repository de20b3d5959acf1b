"""Benchmark scenarios (format: benchmarks/scenarios/README.md): seeded Faker requests, a weighted mix."""

from __future__ import annotations

import json
import random
import string
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.protocol.request_codec import request_to_proto
from engine.runtime.request import request_from_dict

Data = dict[str, Any]


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    stage: str
    kind: str
    weight: float
    spec: Mapping[str, Any]  # the entry as written, with the top-level defaults under it


@dataclass(frozen=True, slots=True)
class Scenario:
    path: str
    ruleset: str
    seed: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Workload:
    """Requests in arrival order, each encoded as a CheckRequest, and the mix entry it came from."""

    encoded: list[bytes]
    names: list[str]
    requests: list[Data] = field(repr=False)


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario from TOML (or JSON when the name ends in .json)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text) if str(path).endswith(".json") else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    defaults = {k: data[k] for k in ("principals", "metadata", "fillers") if k in data}
    entries = tuple(_entry(path, defaults | item) for item in data.get("mix", []))
    if not entries or "ruleset" not in data:
        raise ScenarioError(f"{path}: needs `ruleset` and at least one [[mix]] entry")
    return Scenario(str(path), str(data["ruleset"]), int(data.get("seed", 0)), entries)


def _entry(path: str | Path, item: Mapping[str, Any]) -> Entry:
    name = str(item.get("name", ""))
    kind = item.get("kind")
    if kind not in KINDS or not name or "stage" not in item:
        raise ScenarioError(f"{path}: entry {name!r} needs a name, a stage and a kind of {sorted(KINDS)}")
    return Entry(name, str(item["stage"]), str(kind), float(item.get("weight", 1)), item)


def find_scenario(ruleset_file: str | Path) -> Path | None:
    """The scenario beside a ruleset file: NAME.scenario.toml or NAME.scenario.json for NAME.pal."""
    path = Path(ruleset_file)
    for suffix in (".toml", ".json"):
        if (candidate := path.with_name(f"{path.stem}.scenario{suffix}")).exists():
            return candidate
    return None


# Text


class _Fields(dict[str, str]):
    """Template fields: each lookup calls the Faker method of that name; ``filler`` is a sentence."""

    def __init__(self, fake: Any, rng: random.Random) -> None:
        super().__init__()
        self._fake, self._rng = fake, rng
        self.fillers: list[str] = []  # the current entry's padding sentences (templates themselves)

    def fill(self, template: str) -> str:
        return string.Formatter().vformat(template, (), self)

    def __missing__(self, key: str) -> str:
        if key == "filler":
            if self.fillers:
                return self.fill(self._rng.choice(self.fillers))
            return str(self._fake.sentence(nb_words=12))
        method = getattr(self._fake, key, None) if not key.startswith("_") else None
        if not callable(method):
            raise ScenarioError(f"template field {{{key}}} is not a Faker method")
        return str(method())


class Maker:
    """Draws requests from a scenario's entries; holds the random state and the open conversations."""

    def __init__(self, scenario: Scenario) -> None:
        from faker import Faker  # noqa: PLC0415 (dev and bench extras; only scenarios need it)

        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(scenario.seed)
        self.fields = _Fields(self.fake, self.rng)
        self.conversations: dict[str, tuple[int, list[Data]]] = {}  # name: (most messages, history)

    def fill(self, template: str) -> str:
        try:
            return self.fields.fill(template)
        except (KeyError, IndexError, ValueError) as exc:
            raise ScenarioError(f"{self.scenario.path}: template {template!r}: {exc}") from None

    def pick(self, value: Any) -> Any:
        """A list gives one of its items; a string is a template; anything else is itself."""
        if isinstance(value, list):
            value = self.rng.choice(value)
        return self.fill(value) if isinstance(value, str) else value

    def text(self, spec: Mapping[str, Any], templates: str = "templates", chars: str = "chars") -> str:
        """A filled template padded with filler sentences to at least a length drawn from ``chars``."""
        text = self.fill(self.rng.choice(spec[templates])) if spec.get(templates) else ""
        low, high = spec.get(chars, [0, 0])
        target = self.rng.randint(int(low), int(high))
        while len(text) < target:
            text += (" " if text else "") + self.fill("{filler}")
        return text

    def draw(self) -> tuple[Entry, Data]:
        entries = self.scenario.entries
        entry = self.rng.choices(entries, weights=[e.weight for e in entries])[0]
        spec = entry.spec
        self.fields.fillers = spec.get("fillers", [])
        request: Data = {"stage": entry.stage} | KINDS[entry.kind](self, entry)
        if "principals" in spec:
            request["principal"] = self.rng.choice(spec["principals"])
        if "metadata" in spec:
            request["metadata"] = {k: str(self.pick(v)) for k, v in spec["metadata"].items()}
        return entry, request


def _text(maker: Maker, entry: Entry) -> Data:
    return {"text": maker.text(entry.spec)}


def _chat(maker: Maker, entry: Entry) -> Data:
    """The next turn of this entry's conversation, with its whole history."""
    spec = entry.spec
    max_messages, history = maker.conversations.get(entry.name, (0, []))
    if len(history) >= max_messages:
        max_messages, history = 2 * maker.rng.randint(*spec.get("turns", [2, 10])) - 1, []
    if history:
        history.append({"role": "assistant", "content": maker.text(spec, "replies", "reply_chars")})
    history.append({"role": "user", "content": maker.text(spec)})
    maker.conversations[entry.name] = (max_messages, history)
    return {"messages": list(history)}


def _tool(maker: Maker, entry: Entry) -> Data:
    tool = maker.rng.choice(entry.spec["tools"])
    arguments = {k: _argument(maker, v) for k, v in tool.get("arguments", {}).items()}
    found: Data = {"tool": {"name": tool["name"], "server": tool.get("server", ""), "arguments": arguments}}
    if entry.spec.get("templates"):
        found["text"] = maker.text(entry.spec)
    return found


def _argument(maker: Maker, value: Any) -> Any:
    """A template, a list of templates to draw from, or ``{argv = [...]}`` kept as a list."""
    if isinstance(value, Mapping) and "argv" in value:
        return [maker.fill(part) for part in value["argv"]]
    return maker.pick(value)


KINDS: dict[str, Callable[[Maker, Entry], Data]] = {"text": _text, "chat": _chat, "tool": _tool}


def generate(scenario: Scenario, count: int) -> Workload:
    """``count`` requests in arrival order, encoded for the scenario's ruleset."""
    maker = Maker(scenario)
    drawn = [maker.draw() for _ in range(count)]
    encoded = [request_to_proto(scenario.ruleset, request_from_dict(r)).SerializeToString() for _, r in drawn]
    return Workload(encoded, [e.name for e, _ in drawn], [r for _, r in drawn])
