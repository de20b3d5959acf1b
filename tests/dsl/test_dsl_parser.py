"""The parser: syntax tree shapes, source spans, string escapes, durations, and syntax diagnostics."""

from __future__ import annotations

import pytest

from dsl import ast
from dsl.parser import MAX_NESTING, MAX_SOURCE_BYTES, decode_string, parse, parse_duration

SOURCE = """\
import "lib/common.pal"

ruleset support_bot version "2.1.0" {
  owner "secops@example.com"
  budget p95 25ms
  default allow
  on error block "fail closed"

  detector ssn = regex(pattern: "\\d{3}-\\d{2}-\\d{4}", type: US_SSN, allow: ["000-00-0000"])
  rule no_ssn on input, output {
    on error allow
    when ssn(content).found then block "SSNs are not allowed here"
    when tool.args.path.startswith("/etc") and not ("admin" in principal.roles)
      then escalate to "sre-oncall" within 30m "system files"
  }
}
"""


def parsed(text: str, file: str = "t.pal") -> ast.Module:
    module, diagnostics = parse(file, text)
    assert module is not None, diagnostics
    assert diagnostics == []
    return module


def only_diagnostic(text: str) -> tuple[str, int, int, str]:
    module, diagnostics = parse("t.pal", text)
    assert module is None
    assert len(diagnostics) == 1
    d = diagnostics[0]
    return d.code, d.span.line, d.span.column, d.message


# structure and spans


def test_module_structure() -> None:
    module = parsed(SOURCE)
    assert [i.path for i in module.imports] == ["lib/common.pal"]
    body = module.body
    assert (body.kind, body.name, body.version) == ("ruleset", "support_bot", "2.1.0")
    assert [s.key for s in body.settings] == ["owner", "budget", "default", "on error"]
    assert [d.name for d in body.detectors] == ["ssn"]
    assert [r.name for r in body.rules] == ["no_ssn"]
    rule = body.rules[0]
    assert [name for name, _ in rule.stages] == ["input", "output"]
    assert rule.on_error is not None and rule.on_error.kind is ast.ActionKind.ALLOW
    assert len(rule.arms) == 2


def test_spans_point_at_the_source() -> None:
    module = parsed(SOURCE)
    lines = SOURCE.splitlines()

    def text_at(span: ast.Span) -> str:
        assert span.line == span.end_line
        return lines[span.line - 1][span.column - 1 : span.end_column - 1]

    body = module.body
    assert text_at(body.name_span) == "support_bot"
    assert body.span.line == 3 and body.span.column == 1
    assert module.imports[0].span.line == 1 and module.imports[0].span.column == 1
    decl = body.detectors[0]
    assert text_at(decl.name_span) == "ssn"
    assert text_at(decl.kind_span) == "regex"
    assert (decl.span.line, decl.span.column) == (9, 3)
    params = {p.name: p for p in decl.params}
    assert text_at(params["type"].value_span) == "US_SSN"
    assert text_at(params["allow"].value_span) == '["000-00-0000"]'
    assert text_at(params["pattern"].span).startswith("pattern: ")
    rule = body.rules[0]
    assert text_at(rule.name_span) == "no_ssn"
    assert [text_at(span) for _, span in rule.stages] == ["input", "output"]
    first, second = rule.arms
    assert (first.span.line, first.span.column) == (12, 5)
    assert (second.span.line, second.span.end_line) == (13, 14)
    assert text_at(first.action.span) == 'block "SSNs are not allowed here"'


def test_expression_spans() -> None:
    module = parsed(SOURCE)
    lines = SOURCE.splitlines()
    arm = module.body.rules[0].arms[1]
    condition = arm.condition
    assert isinstance(condition, ast.BoolOp) and condition.op == "and"
    assert (condition.span.line, condition.span.column) == (13, 10)
    call = condition.left
    assert isinstance(call, ast.MethodCall) and call.name == "startswith"
    assert lines[12][call.name_span.column - 1 : call.name_span.end_column - 1] == "startswith"
    negation = condition.right
    assert isinstance(negation, ast.Not)
    membership = negation.operand
    assert isinstance(membership, ast.Compare) and membership.op == "in"
    assert lines[12][membership.span.column - 1 : membership.span.end_column - 1] == (
        '"admin" in principal.roles'
    )
    attr = arm.action
    assert attr.queue == "sre-oncall" and attr.within is not None
    assert attr.within.micros == 30 * 60 * 1_000_000


def test_operator_spans() -> None:
    module = parsed('ruleset t version "1" {\n rule r on input { when content != "x" then block }\n}\n')
    condition = module.body.rules[0].arms[0].condition
    assert isinstance(condition, ast.Compare)
    assert (condition.op_span.line, condition.op_span.column, condition.op_span.end_column) == (2, 33, 35)


def test_precedence_of_boolean_operators() -> None:
    module = parsed(
        'ruleset t version "1" { rule r on input { when true or false and not true then allow } }'
    )
    condition = module.body.rules[0].arms[0].condition
    assert isinstance(condition, ast.BoolOp) and condition.op == "or"
    assert isinstance(condition.right, ast.BoolOp) and condition.right.op == "and"
    assert isinstance(condition.right.right, ast.Not)


def test_postfix_chains_and_quantifiers() -> None:
    text = (
        'ruleset t version "1" { rule r on input {\n'
        '  when any(m in messages: m.content.lower().startswith(["a", "b"]))'
        ' and messages[-1].role == "user"\n'
        "  then allow } }"
    )
    condition = parsed(text).body.rules[0].arms[0].condition
    assert isinstance(condition, ast.BoolOp)
    quant = condition.left
    assert isinstance(quant, ast.Quant) and (quant.kind, quant.var) == ("any", "m")
    assert (quant.var_span.line, quant.var_span.column) == (2, 12)
    compare = condition.right
    assert isinstance(compare, ast.Compare)
    attr = compare.left
    assert isinstance(attr, ast.Attr) and attr.name == "role"
    index = attr.obj
    assert isinstance(index, ast.Index)
    assert isinstance(index.index, ast.Literal) and index.index.value == -1


def test_any_without_in_is_a_plain_call() -> None:
    text = 'ruleset t version "1" { rule r on input { when any(content).found then block } }'
    condition = parsed(text).body.rules[0].arms[0].condition
    assert isinstance(condition, ast.Attr)
    assert isinstance(condition.obj, ast.Call) and condition.obj.func == "any"


def test_actions() -> None:
    text = """ruleset t version "1" {
      default fallback reply "canned" "why"
      rule r on output {
        when true then fallback model "safe-llm"
        when false then fallback redact a, b "scrubbed"
        when false then fallback redact
        when false then allow
      }
    }"""
    body = parsed(text).body
    default = body.settings[0].value
    assert isinstance(default, ast.Action)
    assert (default.fallback, default.fallback_value, default.reason) == (
        ast.FallbackKind.REPLY,
        "canned",
        "why",
    )
    arms = body.rules[0].arms
    assert arms[0].action.fallback is ast.FallbackKind.MODEL
    assert arms[0].action.fallback_value == "safe-llm" and arms[0].action.reason is None
    assert [name for name, _ in arms[1].action.redact] == ["a", "b"]
    assert arms[1].action.reason == "scrubbed"
    assert arms[2].action.redact == () and arms[2].action.fallback is ast.FallbackKind.REDACT
    assert arms[3].action.kind is ast.ActionKind.ALLOW


def test_detector_parameter_values() -> None:
    text = (
        'library l { detector d = k(s: "x", n: -2, f: 0.5, t: true, u: false, i: NAME, d: 2s,'
        ' l: [A, "b", 3]) }'
    )
    params = {p.name: p.value for p in parsed(text).body.detectors[0].params}
    assert params["s"] == "x"
    assert params["n"] == -2 and isinstance(params["n"], int)
    assert params["f"] == 0.5
    assert params["t"] is True and params["u"] is False
    assert params["i"] == ast.Ident("NAME")
    assert params["d"] == ast.Duration(2_000_000, "2s")
    assert params["l"] == [ast.Ident("A"), "b", 3]


def test_library() -> None:
    body = parsed("library shared { rule r on input { when true then allow } }").body
    assert (body.kind, body.name, body.version) == ("library", "shared", "")


def test_comments_are_ignored() -> None:
    text = '# header\nruleset t version "1" { # trailing\n  # a line\n  default allow # why\n}\n# end'
    assert parsed(text).body.settings[0].key == "default"


def test_hash_inside_a_string_is_not_a_comment() -> None:
    text = 'ruleset t version "1" { rule r on input { when content == "#tag" then block } }'
    condition = parsed(text).body.rules[0].arms[0].condition
    assert isinstance(condition, ast.Compare)
    assert isinstance(condition.right, ast.Literal) and condition.right.value == "#tag"


# string escapes


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ('""', ""),
        ('"plain"', "plain"),
        (r'"say \"hi\""', 'say "hi"'),
        (r'"back\\slash"', "back\\slash"),
        (r'"a\nb"', "a\nb"),
        (r'"a\tb"', "a\tb"),
        (r'"\d{3}-\w+\s"', r"\d{3}-\w+\s"),
        (r'"\b\.\("', r"\b\.\("),
        (r'"\\d"', r"\d"),
        (r'"ends with \\"', "ends with \\"),
        ('"ünïcode 🙂"', "ünïcode 🙂"),
    ],
)
def test_decode_string(token: str, value: str) -> None:
    assert decode_string(token) == value


def test_escapes_in_source() -> None:
    text = r'ruleset t version "1" { rule r on input { when content == "q\"\\\n\t\x" then block } }'
    condition = parsed(text).body.rules[0].arms[0].condition
    assert isinstance(condition, ast.Compare) and isinstance(condition.right, ast.Literal)
    assert condition.right.value == 'q"\\\n\t\\x'


# durations


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("500us", 500),
        ("25ms", 25_000),
        ("2s", 2_000_000),
        ("15m", 900_000_000),
        ("1h", 3_600_000_000),
        ("1.5s", 1_500_000),
        ("0.5ms", 500),
        ("0ms", 0),
    ],
)
def test_parse_duration(text: str, micros: int) -> None:
    assert parse_duration(text) == micros


def test_duration_in_source() -> None:
    text = 'ruleset t version "1" { budget p95 2.5ms }'
    budget = parsed(text).body.settings[0]
    assert budget.detail == "p95"
    assert budget.value == ast.Duration(2_500, "2.5ms")


@pytest.mark.parametrize("duration", ["0ms", "0s", "0.0001us"])
def test_durations_must_be_positive(duration: str) -> None:
    code, line, column, message = only_diagnostic(f'ruleset t version "1" {{\n  budget p95 {duration}\n}}')
    assert (code, line, column) == ("P103", 2, 14)
    assert "positive" in message


# syntax diagnostics


def test_syntax_error_says_what_was_expected() -> None:
    code, line, column, message = only_diagnostic('ruleset t version "1" {\n  rule r on input {\n  }\n}')
    assert (code, line, column) == ("P100", 3, 3)
    assert message.startswith("unexpected '}'; expected ")
    assert "'when'" in message


def test_syntax_error_at_end_of_file() -> None:
    code, _, _, message = only_diagnostic('ruleset t version "1" {')
    assert code == "P100"
    assert "the end of the file" in message


def test_empty_source() -> None:
    code, line, column, message = only_diagnostic("")
    assert (code, line, column) == ("P100", 1, 1)
    assert "'ruleset'" in message and "'library'" in message


def test_unexpected_character() -> None:
    code, line, column, message = only_diagnostic('ruleset t version "1" {\n  owner $x\n}')
    assert (code, line, column) == ("P101", 2, 9)
    assert "'$'" in message


def test_single_quote_hint() -> None:
    module, diagnostics = parse("t.pal", "ruleset t version '1' {}")
    assert module is None
    assert diagnostics[0].code == "P101"
    assert diagnostics[0].hint == "strings use double quotes"


def test_nesting_limit() -> None:
    # Every bracket counts, the ruleset's and the rule's braces included.
    ok = "(" * (MAX_NESTING - 2) + "true" + ")" * (MAX_NESTING - 2)
    parsed(f'ruleset t version "1" {{ rule r on input {{ when {ok} then block }} }}')
    deep = "(" * (MAX_NESTING - 1) + "true" + ")" * (MAX_NESTING - 1)
    code, line, column, message = only_diagnostic(
        f'ruleset t version "1" {{\n rule r on input {{ when {deep} then block }} }}'
    )
    assert code == "P102"
    # The span is the bracket that went past the limit: the last opening parenthesis.
    assert (line, column) == (2, len(" rule r on input { when ") + MAX_NESTING - 1)
    assert str(MAX_NESTING) in message


def test_brackets_in_strings_and_comments_do_not_nest() -> None:
    brackets = "(" * (MAX_NESTING + 5)
    text = f'# {brackets}\nruleset t version "1" {{ owner "{brackets}" }}'
    assert parsed(text).body.settings[0].value == brackets


def test_source_size_limit() -> None:
    filler = "#" * MAX_SOURCE_BYTES
    code, line, column, message = only_diagnostic(filler + '\nruleset t version "1" {}')
    assert (code, line, column) == ("P102", 1, 1)
    assert "larger" in message


def test_size_limit_counts_bytes_not_characters() -> None:
    # Each "é" is two bytes in UTF-8: the text is under the limit in characters, over it in bytes.
    text = "#" + "é" * (MAX_SOURCE_BYTES // 2) + '\nruleset t version "1" {}'
    assert len(text) < MAX_SOURCE_BYTES + 100
    code, *_ = only_diagnostic(text)
    assert code == "P102"


def test_spans_carry_the_file_name() -> None:
    module, _ = parse("dir/x.pal", 'ruleset t version "1" {}')
    assert module is not None and module.body.span.file == "dir/x.pal"
    _, diagnostics = parse("dir/y.pal", "ruleset")
    assert diagnostics[0].span.file == "dir/y.pal"
