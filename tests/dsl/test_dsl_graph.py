"""The decision graph: shared detector nodes, cost ordering, the budget estimate, and its renderings."""

from __future__ import annotations

import re

from dsl import ir, render
from dsl.compiler import compile_source
from dsl.types import Outcome

DEDUPE = """\
ruleset t version "1" {
  detector ssn_a = regex(pattern: "\\d{3}-\\d{2}-\\d{4}", type: US_SSN)
  detector ssn_b = regex(type: US_SSN, pattern: "\\d{3}-\\d{2}-\\d{4}", ignore_case: false)
  detector ssn_other_type = regex(pattern: "\\d{3}-\\d{2}-\\d{4}", type: SSN)
  detector keys = secrets()
  rule a on input { when ssn_a(content).found then block }
  rule b on input, output { when ssn_b(content).count > 1 then block }
  rule c on output { when ssn_other_type(content).found then block }
  rule d on tool_call { when ssn_a(tool.args.note).found or keys(tool.args_text).found then block }
  rule e on output { when keys(content).found then fallback redact keys, ssn_b }
}
"""


def test_same_kind_and_parameters_on_the_same_input_is_one_node() -> None:
    graph = compile_source(DEDUPE)
    by_input: dict[str, list[ir.DetectorNode]] = {}
    for node in graph.detectors.values():
        by_input.setdefault(ir.render(node.input), []).append(node)
    content_nodes = by_input["content"]
    # ssn_a and ssn_b are one node; a different finding type is a different detector; keys is one.
    assert len(content_nodes) == 3
    shared = next(n for n in content_nodes if "ssn_a" in n.decls)
    assert set(shared.decls) == {"ssn_a", "ssn_b"}
    assert shared.kind == "regex"
    assert {n.kind for n in content_nodes} == {"regex", "secrets"}
    # the same detector on other inputs is another node
    assert len(by_input["tool.args.note"]) == 1
    assert len(by_input["tool.args_text"]) == 1
    assert len(graph.detectors) == 5


def test_rules_reference_the_shared_node() -> None:
    graph = compile_source(DEDUPE)
    rules = {r.name: r for r in graph.rules}
    (a_node,) = rules["a"].arms[0].detectors
    (b_node,) = rules["b"].arms[0].detectors
    assert a_node == b_node
    redact = rules["e"].arms[0].action.redact
    assert len(redact) == 2 and a_node in redact
    assert set(rules["e"].arms[0].detectors) == set(redact)


def test_redact_without_names_takes_the_conditions_content_detectors() -> None:
    graph = compile_source(
        'ruleset t version "1" {\n detector k = secrets()\n detector w = keywords(words: ["x"])\n'
        " rule r on output, tool_call { when k(content).found or w(tool.args_text).found or w(content).found"
        " then fallback redact }\n}"
    )
    action = graph.rules[0].arms[0].action
    assert sorted(action.redact) == ["k(content)", "w(content)"]


def test_cheap_predicates_are_ordered_before_detectors() -> None:
    graph = compile_source(
        'ruleset t version "1" {\n detector k = secrets()\n'
        ' rule r on input { when k(content).found and content matches "x+y" and stage == "input"'
        " then block }\n}"
    )
    rendered = ir.render(graph.rules[0].arms[0].condition)
    assert rendered.index("stage") < rendered.index("matches") < rendered.index("k(content)")


def test_estimated_cost_and_max_outcome() -> None:
    graph = compile_source(DEDUPE)
    detector_cost = sum(n.cost_us for n in graph.detectors.values())
    assert graph.estimated_cost_us >= detector_cost > 0
    rules = {r.name: r for r in graph.rules}
    assert rules["e"].max_outcome is Outcome.BLOCK  # the default error policy blocks
    lenient = compile_source(
        'ruleset t version "1" { on error allow\n'
        ' rule r on input { when content == "x" then escalate to "q" within 1m } }'
    )
    assert lenient.rules[0].max_outcome is Outcome.ESCALATE


def test_canonical_form_has_no_spans_or_files() -> None:
    canonical = compile_source(DEDUPE, file="some/where.pal").canonical()
    text = repr(canonical)
    assert "where.pal" not in text and "Span" not in text
    assert [r["name"] for r in canonical["rules"]] == ["a", "b", "c", "d", "e"]


def test_to_text() -> None:
    graph = compile_source(
        'ruleset shop version "3.0" {\n  budget p95 5ms\n  default block "closed"\n'
        "  detector k = secrets()\n"
        '  rule r on input, output { when k(content).found then escalate to "sec" within 2m "keys" }\n'
        '  rule s on input { when content == "x" then fallback reply "no" }\n}'
    )
    text = render.to_text(graph)
    lines = text.splitlines()
    assert lines[0] == f"ruleset shop 3.0  {graph.content_hash}"
    assert "budget p95 5ms" in lines[1]
    assert 'default block "closed"' in lines[2]
    assert "k(content): secrets" in text and "declared as k" in text
    assert "    r on input, output" in lines
    assert "      when k(content).found" in lines
    assert '        then escalate to "sec" within 2m "keys"' in lines
    assert '        then fallback reply "no"' in lines


def test_to_dot() -> None:
    graph = compile_source(DEDUPE)
    dot = render.to_dot(graph)
    assert dot.startswith('digraph "t" {') and dot.endswith("}")
    # every detector is a box; fields feed detectors, detectors feed arms, arms feed outcomes
    for node_id in graph.detectors:
        assert f'"{node_id}" [shape=box' in dot
    assert '"content" -> "' in dot
    assert '"tool.args_text" -> "keys(tool.args_text)";' in dot
    assert re.search(r'"ssn_a\(content\)" -> "a#0";', dot)
    assert '"a#0" -> "BLOCK";' in dot
    assert '"e#0" -> "FALLBACK";' in dot
    assert '"content" [shape=plaintext];' in dot
    # balanced quotes on every line: labels are escaped
    assert all(unescaped_quotes(line) % 2 == 0 for line in dot.splitlines())


def unescaped_quotes(line: str) -> int:
    return line.replace("\\\\", "").replace('\\"', "").count('"')


def test_to_dot_escapes_labels() -> None:
    graph = compile_source(
        'ruleset t version "1" { rule r on input { when content == "say \\"hi\\"" then block } }'
    )
    dot = render.to_dot(graph)
    assert all(unescaped_quotes(line) % 2 == 0 for line in dot.splitlines()), dot
    (label,) = re.findall(r'"r#0" \[shape=ellipse, label=(".*")\];', dot)
    # DOT's line break inside a label is the two characters backslash-n, not an escaped backslash
    assert label.startswith('"r#0\\nwhen ')
    assert "\\\\n" not in label
