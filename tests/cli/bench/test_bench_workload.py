"""Benchmark scenarios: one per shipped ruleset, on its stages; seeded, varied, valid requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.compiler import compile_file
from engine.cli.bench.workload import Scenario, ScenarioError, find_scenario, generate, load_scenario
from engine.runtime.registry import source_files

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = [p for p in source_files(str(ROOT / "rulesets")) if "/lib/" not in p]


def _scenario(text: str, tmp_path: Path) -> Scenario:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return load_scenario(path)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: Path(p).stem)
def test_every_shipped_ruleset_has_a_scenario_on_its_stages(path: str) -> None:
    graph = compile_file(path)
    found = find_scenario(path)
    assert found is not None, f"no scenario beside {path}"
    scenario = load_scenario(found)
    assert scenario.ruleset == graph.name
    stages = {e.stage for e in scenario.entries}
    own = {str(s) for r in graph.rules if r.span and r.span.file == path for s in r.stages}
    assert own <= stages <= {str(s) for r in graph.rules for s in r.stages}  # library rules add stages
    workload = generate(scenario, 300)  # every request passes request_from_dict
    assert set(workload.names) == {e.name for e in scenario.entries}
    assert len(set(workload.encoded)) > 290  # varied text, not one repeated string


def test_the_same_seed_gives_the_same_requests() -> None:
    scenario = load_scenario(ROOT / "rulesets" / "support_bot.scenario.toml")
    assert generate(scenario, 50).encoded == generate(scenario, 50).encoded


def test_a_chat_resends_its_history_turn_by_turn(tmp_path: Path) -> None:
    scenario = _scenario(
        'ruleset = "r"\n[[mix]]\nname = "c"\nstage = "input"\nkind = "chat"\nturns = [3, 3]\n'
        'templates = ["hi {first_name}"]\nreplies = ["ok"]\n',
        tmp_path,
    )
    counts = [len(r["messages"]) for r in generate(scenario, 4).requests]
    assert counts == [1, 3, 5, 1]
    second = generate(scenario, 2).requests[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]


def test_tool_arguments_are_drawn_and_filled(tmp_path: Path) -> None:
    scenario = _scenario(
        'ruleset = "r"\n[[mix]]\nname = "t"\nstage = "tool_call"\nkind = "tool"\n'
        'tools = [{ name = "shell.exec", arguments = '
        '{ command = ["ls {word}"], argv = { argv = ["rm", "{word}"] } } }]\n',
        tmp_path,
    )
    (request,) = generate(scenario, 1).requests
    assert request["tool"]["arguments"]["command"].startswith("ls ")
    assert request["tool"]["arguments"]["argv"][0] == "rm"


def test_unknown_template_fields_are_named(tmp_path: Path) -> None:
    scenario = _scenario(
        'ruleset = "r"\n[[mix]]\nname = "x"\nstage = "input"\nkind = "text"\ntemplates = ["{nope}"]\n',
        tmp_path,
    )
    with pytest.raises(ScenarioError, match="nope"):
        generate(scenario, 1)


def test_a_scenario_needs_a_ruleset_and_entries(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="ruleset"):
        _scenario("seed = 1\n", tmp_path)
