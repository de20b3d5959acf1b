"""The ruleset registry: loading a directory, versions, the active version, unknown rulesets."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.diagnostics import CompileError
from dsl.types import Outcome
from engine.runtime.registry import Registry, UnknownRuleset, source_files
from engine.runtime.request import request_from_dict


def ruleset(name: str, version: str, outcome: str = "block") -> str:
    rule = f'  rule r on input {{ when content == "x" then {outcome} }}\n'
    return f'ruleset {name} version "{version}" {{\n{rule}}}\n'


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def rulesets(tmp_path: Path) -> Path:
    write(tmp_path, "support/v1.pal", ruleset("support", "2.9.1", "allow"))
    write(tmp_path, "support/v2.pal", ruleset("support", "2.10.0", "block"))
    write(tmp_path, "support/v0.pal", ruleset("support", "1.0.0", 'escalate to "q" within 1m'))
    write(tmp_path, "agent.pal", ruleset("agent", "1.0.0"))
    write(
        tmp_path,
        "lib/common.pal",
        'library common { rule shared on input { when content == "y" then block } }',
    )
    write(tmp_path, "notes.txt", "not a ruleset")
    return tmp_path


def test_source_files_finds_pal_files_in_a_stable_order(rulesets: Path) -> None:
    found = [Path(p).relative_to(rulesets).as_posix() for p in source_files(str(rulesets))]
    assert found == ["agent.pal", "lib/common.pal", "support/v0.pal", "support/v1.pal", "support/v2.pal"]
    single = rulesets / "agent.pal"
    assert list(source_files(str(single))) == [str(single)]


def test_load_a_directory(rulesets: Path) -> None:
    registry = Registry.load(str(rulesets))
    keys = sorted((e.graph.name, e.graph.version) for e in registry)
    assert keys == [("agent", "1.0.0"), ("support", "1.0.0"), ("support", "2.10.0"), ("support", "2.9.1")]


def test_the_highest_version_is_active(rulesets: Path) -> None:
    registry = Registry.load(str(rulesets))
    active = registry.get("support")
    assert active.graph.version == "2.10.0"  # numerically, not as text ("2.9.1" > "2.10.0" as text)
    decision = active.evaluate(request_from_dict({"stage": "input", "text": "x"}))
    assert decision.outcome is Outcome.BLOCK
    assert decision.version == "2.10.0"


def test_pinned_versions(rulesets: Path) -> None:
    registry = Registry.load(str(rulesets))
    pinned = registry.get("support", "2.9.1")
    assert pinned.graph.version == "2.9.1"
    decision = pinned.evaluate(request_from_dict({"stage": "input", "text": "x"}))
    assert decision.outcome is Outcome.ALLOW
    assert decision.content_hash == pinned.graph.content_hash
    assert registry.get("support", "1.0.0").graph.version == "1.0.0"


def test_unknown_ruleset_and_version(rulesets: Path) -> None:
    registry = Registry.load(str(rulesets))
    with pytest.raises(UnknownRuleset) as info:
        registry.get("nope")
    assert "nope" in str(info.value) and "support@2.10.0" in str(info.value)
    with pytest.raises(UnknownRuleset, match=r"version '3\.0\.0'"):
        registry.get("support", "3.0.0")
    with pytest.raises(LookupError):
        registry.get("agent", "9")


def test_a_bad_file_raises_and_nothing_loads(rulesets: Path) -> None:
    write(
        rulesets,
        "support/v3.pal",
        'ruleset support version "3.0.0" {\n  rule r on input { when contnet == "x" then block }\n}\n',
    )
    with pytest.raises(CompileError) as info:
        Registry.load(str(rulesets))
    assert [d.code for d in info.value.diagnostics] == ["P200"]
    assert "v3.pal:2:26" in str(info.value)
    assert any(path.endswith("v3.pal") for path in info.value.sources)


def test_every_bad_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.pal", "ruleset a {")
    write(tmp_path, "b.pal", 'ruleset b version "1" { rule r on inptu { when true then block } }')
    write(tmp_path, "c.pal", ruleset("c", "1"))
    with pytest.raises(CompileError) as info:
        Registry.load(str(tmp_path))
    assert sorted(d.code for d in info.value.diagnostics) == ["P100", "P205"]


def test_the_same_version_twice_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.pal", ruleset("dup", "1.0"))
    write(tmp_path, "b.pal", ruleset("dup", "1.0", "allow"))
    with pytest.raises(CompileError) as info:
        Registry.load(str(tmp_path))
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "P204"
    assert diagnostic.span.file.endswith("b.pal")


def test_an_empty_directory_loads_nothing(tmp_path: Path) -> None:
    registry = Registry.load(str(tmp_path))
    assert list(registry) == []
    with pytest.raises(UnknownRuleset, match="loaded: none"):
        registry.get("x")
