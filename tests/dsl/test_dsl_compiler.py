"""The compiler: named stages with hooks, libraries and imports, content hashes, and robustness."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl import ir
from dsl.compile_state import Compilation
from dsl.compiler import STAGE_NAMES, compile_file, compile_source, run
from dsl.diagnostics import CompileError
from dsl.types import Outcome, Stage

RULESET = """\
ruleset support version "1.2.0" {
  owner "secops@example.com"
  budget p95 25ms
  default allow
  on error block
  detector keys = secrets()
  detector bad = keywords(words: ["jailbreak"], type: JAILBREAK)
  rule leaked on output { when keys(content).found then fallback redact keys }
  rule jailbreak on input {
    when bad(content).found and not ("admin" in principal.roles) then block "jailbreak"
    when content matches "(?i)ignore (all|previous) instructions" then escalate to "secops" within 15m
  }
}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


# stages and hooks


def test_stage_names() -> None:
    assert STAGE_NAMES == ("parse", "resolve", "check_detectors", "check_types", "build_graph", "optimise")


def test_hooks_run_after_their_stage_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, "r.pal", RULESET)
    seen: list[tuple[str, bool, int]] = []

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(c: Compilation) -> None:
            seen.append((name, c.graph is not None, len(c.typed_rules)))

        return record

    c = run(path, after={name: hook(name) for name in reversed(STAGE_NAMES)})
    assert c.ok and c.graph is not None
    assert [name for name, _, _ in seen] == list(STAGE_NAMES)
    by_name = {name: (has_graph, typed) for name, has_graph, typed in seen}
    assert by_name["check_detectors"] == (False, 0)
    assert by_name["check_types"] == (False, 2)
    assert by_name["build_graph"] == (True, 2)


def test_check_types_hook_sees_typed_rules(tmp_path: Path) -> None:
    path = write(tmp_path, "r.pal", RULESET)
    calls: list[Compilation] = []
    c = run(path, after={"check_types": calls.append})
    assert len(calls) == 1 and calls[0] is c
    assert [t.rule.name for t in calls[0].typed_rules] == ["leaked", "jailbreak"]
    assert set(calls[0].detectors) == {"keys", "bad"}


def test_until_stops_after_the_named_stage(tmp_path: Path) -> None:
    path = write(tmp_path, "r.pal", RULESET)
    c = run(path, until="check_types")
    assert c.ok
    assert c.typed_rules and c.graph is None
    c = run(path, until="parse")
    assert c.modules and c.body is None
    c = run(path, until="build_graph")
    assert c.graph is not None and c.graph.content_hash == ""  # the optimiser sets the hash
    assert run(path).graph is not None


def test_unknown_stage_names_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "r.pal", RULESET)
    with pytest.raises(ValueError, match="unknown compiler stage 'typecheck'"):
        run(path, after={"typecheck": lambda c: None})
    with pytest.raises(ValueError, match="check_types"):
        run(path, until="link")


def test_hooks_do_not_run_after_a_failed_stage(tmp_path: Path) -> None:
    path = write(tmp_path, "r.pal", 'ruleset t version "1" { rule r on input { when nope then block } }')
    called: list[str] = []
    c = run(
        path,
        after={"check_types": lambda c: called.append("types"), "parse": lambda c: called.append("parse")},
    )
    assert not c.ok
    assert called == ["parse"]
    assert c.graph is None


def test_every_checking_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """ruleset t version "1" {
  default allow
  default block
  detector d = regx(pattern: "x")
  detector e = keywords(wrds: ["x"])
  rule r on inptu { when contnet == "x" then block }
  rule s on input { when 1 == "1" then block }
}
"""
    c = run(write(tmp_path, "r.pal", text))
    codes = [d.code for d in c.diagnostics]
    assert codes == ["P208", "P202", "P401", "P400", "P205", "P200", "P300"]
    lines = [d.span.line for d in c.diagnostics]
    assert lines == sorted(lines)


def test_uses_of_a_broken_detector_are_not_reported_again(tmp_path: Path) -> None:
    text = """ruleset t version "1" {
  detector d = regex(pattern: "(")
  rule r on output { when d(content).found then fallback redact d }
}
"""
    c = run(write(tmp_path, "r.pal", text))
    assert [d.code for d in c.diagnostics] == ["P403"]


# libraries and imports


def test_library_rules_join_the_ruleset(tmp_path: Path) -> None:
    write(
        tmp_path,
        "lib/common.pal",
        'library common {\n  detector kw = keywords(words: ["x"])\n'
        "  rule shared on input { when kw(content).found then block }\n}\n",
    )
    path = write(
        tmp_path,
        "main.pal",
        'import "lib/common.pal"\nruleset t version "1" {\n'
        "  rule local on output { when kw(content).found then allow }\n}\n",
    )
    graph = compile_file(path)
    assert [r.name for r in graph.rules] == ["shared", "local"]
    assert len(graph.detectors) == 1
    assert len(graph.files) == 2


def test_a_library_imported_twice_loads_once(tmp_path: Path) -> None:
    write(tmp_path, "base.pal", "library base { rule b on input { when true then allow } }")
    write(
        tmp_path,
        "one.pal",
        'import "base.pal"\nlibrary one { rule o on input { when false or content == "1" then allow } }',
    )
    write(
        tmp_path,
        "two.pal",
        'import "base.pal"\nlibrary two { rule t on input { when content == "2" then allow } }',
    )
    path = write(tmp_path, "main.pal", 'import "one.pal"\nimport "two.pal"\nruleset m version "1" {}\n')
    c = run(path)
    assert c.ok, c.diagnostics
    assert c.graph is not None
    assert sorted(r.name for r in c.graph.rules) == ["b", "o", "t"]


def test_a_library_checks_but_does_not_compile(tmp_path: Path) -> None:
    path = write(tmp_path, "lib.pal", 'library l { rule r on input { when content == "x" then block } }')
    c = run(path)
    assert c.ok and c.graph is None and len(c.typed_rules) == 1
    with pytest.raises(CompileError) as info:
        compile_file(path)
    assert [d.code for d in info.value.diagnostics] == ["P602"]


def test_a_broken_library_is_reported_in_its_own_file(tmp_path: Path) -> None:
    lib = write(tmp_path, "lib.pal", "library l {\n  rule r on input { when nope then block }\n}\n")
    path = write(tmp_path, "main.pal", 'import "lib.pal"\nruleset t version "1" {}\n')
    c = run(path)
    assert [(d.code, d.span.file, d.span.line) for d in c.diagnostics] == [("P200", lib, 2)]
    assert set(c.sources) == {path, lib}


def test_self_import_is_a_cycle(tmp_path: Path) -> None:
    path = write(tmp_path, "me.pal", 'import "me.pal"\nruleset t version "1" {}\n')
    c = run(path)
    assert ("P601", 1, 1) in [(d.code, d.span.line, d.span.column) for d in c.diagnostics]
    assert not c.ok


def test_missing_root_file_is_a_diagnostic(tmp_path: Path) -> None:
    c = run(str(tmp_path / "absent.pal"))
    assert not c.ok
    assert [d.code for d in c.diagnostics] == ["P100"]
    assert "cannot read" in c.diagnostics[0].message


def test_compile_source_reads_imports_relative_to_its_file(tmp_path: Path) -> None:
    write(tmp_path, "lib.pal", 'library l { rule from_lib on input { when content == "x" then block } }')
    graph = compile_source('import "lib.pal"\nruleset t version "1" {}\n', file=str(tmp_path / "virtual.pal"))
    assert [r.name for r in graph.rules] == ["from_lib"]


def test_compile_error_lists_everything() -> None:
    with pytest.raises(CompileError) as info:
        compile_source(
            'ruleset t version "1" {\n rule r on input { when a == b then block }\n}\n', file="mem.pal"
        )
    assert [d.code for d in info.value.diagnostics] == ["P200", "P200"]
    assert "mem.pal:2:25" in str(info.value)


# the graph's settings


def test_graph_settings() -> None:
    graph = compile_source(RULESET)
    assert (graph.name, graph.version, graph.owner) == ("support", "1.2.0", "secops@example.com")
    assert graph.budget_p95_us == 25_000
    assert graph.default.outcome is Outcome.ALLOW
    assert graph.on_error.outcome is Outcome.BLOCK
    rules = {r.name: r for r in graph.rules}
    assert rules["leaked"].stages == frozenset({Stage.OUTPUT})
    escalate = rules["jailbreak"].arms[1].action
    assert (escalate.outcome, escalate.queue, escalate.within_us) == (Outcome.ESCALATE, "secops", 900_000_000)


def test_defaults_when_settings_are_absent() -> None:
    graph = compile_source(
        'ruleset t version "1" { rule r on input { when content == "x" then escalate to "q" within 1s } }'
    )
    assert graph.default.outcome is Outcome.ALLOW
    assert graph.on_error.outcome is Outcome.BLOCK  # fail closed
    assert graph.rules[0].on_error.outcome is Outcome.BLOCK
    assert graph.budget_p95_us == 0 and graph.owner == ""


def test_rule_error_policy_overrides_the_ruleset() -> None:
    graph = compile_source(
        'ruleset t version "1" { on error escalate to "ops" within 5m\n'
        ' rule a on input { when content == "x" then block }\n'
        ' rule b on input { on error allow\n when content == "y" then block } }'
    )
    rules = {r.name: r for r in graph.rules}
    assert rules["a"].on_error.outcome is Outcome.ESCALATE and rules["a"].on_error.queue == "ops"
    assert rules["b"].on_error.outcome is Outcome.ALLOW


def test_audit_excerpts_is_a_graph_setting_that_costs_a_masking_scan() -> None:
    plain = compile_source(RULESET)
    with_excerpts = compile_source(
        RULESET.replace("  default allow\n", "  default allow\n  audit excerpts 200\n")
    )
    assert plain.audit_excerpts == 0 and plain.audit_cost_us == 0
    assert with_excerpts.audit_excerpts == 200
    assert with_excerpts.audit_cost_us > 0
    assert with_excerpts.estimated_cost_us == plain.estimated_cost_us + with_excerpts.audit_cost_us
    assert with_excerpts.content_hash != plain.content_hash
    assert "audit_excerpts" not in plain.canonical()  # graphs without it keep the hashes they had


def test_masking_excerpts_counts_against_the_budget() -> None:
    source = (
        'ruleset t version "1" {\n  budget p95 1ms\n  audit excerpts 100\n'
        '  rule r on input { when content == "x" then block }\n}'
    )
    with pytest.raises(CompileError) as caught:
        compile_source(source)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "P700" and diagnostic.span.line == 2
    assert diagnostic.hint is not None and "masking the audit excerpts" in diagnostic.hint
    assert compile_source(source.replace("audit excerpts 100\n", "")).audit_excerpts == 0


# content hash


def test_content_hash_is_stable_across_formatting_and_comments() -> None:
    reformatted = "# a comment that changes nothing\n" + RULESET.replace("  ", "    ").replace(
        " {", "  {  # brace\n"
    ).replace("then", "\n      then")
    assert reformatted != RULESET
    first, second = compile_source(RULESET), compile_source(reformatted, file="elsewhere/other.pal")
    assert first.content_hash.startswith("sha256:")
    assert first.content_hash == second.content_hash
    assert first.content_hash == compile_source(RULESET).content_hash


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('version "1.2.0"', 'version "1.2.1"'),
        ('words: ["jailbreak"]', 'words: ["jailbreak", "dan"]'),
        ("budget p95 25ms", "budget p95 30ms"),
        ("default allow", "default block"),
        ("on error block", "on error allow"),
        ('then block "jailbreak"', 'then block "jail break"'),
        ("within 15m", "within 16m"),
        ("rule leaked on output", "rule leaked on output, retrieval"),
        ('"admin" in principal.roles', '"root" in principal.roles'),
        ("and not", "or not"),
    ],
)
def test_content_hash_changes_with_semantics(old: str, new: str) -> None:
    assert old in RULESET
    changed = RULESET.replace(old, new)
    assert compile_source(changed).content_hash != compile_source(RULESET).content_hash


def test_content_hash_matches_the_canonical_form() -> None:
    graph = compile_source(RULESET)
    assert graph.compute_hash() == graph.content_hash


# robustness


def test_a_catastrophic_regex_on_a_constant_does_not_crash_the_compiler() -> None:
    # Constant folding evaluates `"..." matches P` at compile time: a pattern that backtracks
    # catastrophically must not escape as an exception (at worst the arm is left to run time).
    text = (
        'ruleset t version "1" { rule r on input { when "' + "a" * 30 + '!" matches "(a|a)+$" then block } }'
    )
    c = run("mem.pal", reader=lambda path: text)
    assert c.ok, c.diagnostics
    assert c.graph is not None
    assert isinstance(c.graph.rules[0].arms[0].condition, ir.Match)  # not folded


def test_folding_decides_constant_arms() -> None:
    text = """ruleset t version "1" {
  rule r on input {
    when "abc" matches "b" and "x" in ["x", "y"] and 2 >= 1 and not false and content == "q" then block
  }
}"""
    graph = compile_source(text)
    condition = graph.rules[0].arms[0].condition
    assert ir.render(condition) == 'content == "q"'
