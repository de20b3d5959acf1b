"""Property tests: whatever text goes in, the parser and the compiler answer with a module or with
diagnostics whose spans are valid, never with an exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.compiler import run
from dsl.diagnostics import Diagnostic
from dsl.parser import parse

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYWORDS = [
    "import", "ruleset", "library", "version", "owner", "budget", "p95", "default", "on", "error",
    "detector", "rule", "when", "then", "allow", "block", "fallback", "reply", "model", "redact",
    "escalate", "to", "within", "and", "or", "not", "in", "matches", "any", "all", "true", "false",
]  # fmt: skip
NAMES = [
    "content", "messages", "stage", "tool", "principal", "metadata", "name", "args", "args_text", "roles",
    "attributes", "role", "length", "lower", "startswith", "contains", "found", "count", "score", "types",
    "input", "output", "tool_call", "regex", "keywords", "secrets", "pattern", "words", "d", "m", "x",
    "US_SSN",
]  # fmt: skip
LITERALS = [
    '"x"', '""', '"\\d+"', '"(a|b"', '"say \\"hi\\""', '"\\\\"', "0", "-1", "2.5", "25ms", "0s", "15m",
    "1h", "500us", '"lib.pal"', '"1.0"',
]  # fmt: skip
PUNCTUATION = [
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    ":",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "#",
    "'",
    "@",
]
SEPARATORS = [" ", " ", " ", "\n", "\t", "\r\n", ""]

token = st.sampled_from(KEYWORDS + NAMES + LITERALS + PUNCTUATION)
soup = st.lists(st.tuples(token, st.sampled_from(SEPARATORS)), max_size=60).map(
    lambda pairs: "".join(t + s for t, s in pairs)
)

# Expressions built from the grammar's pieces, so that many of them parse and reach the checker.
atom = st.sampled_from(
    [
        "content", "messages", "stage", "tool.name", "tool.args.path", "tool.args", "tool.args_text",
        "principal.roles", "principal.attributes.team", "metadata.tier", "metadata", "messages[0]",
        "messages[-1].role", "d(content)", "d(messages)", "d(tool.args.cmd)", "m", "m.role", "m.content",
        "true", "false", '"x"', '"admin"', "1", "-2.5", '["a", "b"]', "[1, 2]", "[]", "nope",
    ]
)  # fmt: skip
suffix = st.sampled_from(
    [
        "", ".length", ".lower()", ".trim()", '.startswith("a")', '.endswith(["a", "b"])', '.contains("x")',
        ".found", ".count", ".score", ".types", ".any(X)", ".any(Y)", ".role", ".x", "[0]", '["k"]',
    ]
)  # fmt: skip
operand = st.builds(lambda a, s: a + s, atom, suffix)
comparison = st.one_of(
    operand,
    st.builds(
        lambda a, op, b: f"{a} {op} {b}",
        operand,
        st.sampled_from(["==", "!=", "<", ">=", "in", "not in"]),
        operand,
    ),
    st.builds(lambda a, p: f"{a} matches {p}", operand, st.sampled_from(['"x+"', '"(a+)+$"', '"["'])),
)
# Conditions that type-check, so that generated rules also reach graph building and optimising.
typed_leaf = st.sampled_from(
    [
        'content == "x"', '"admin" in principal.roles', "d(content).found", 'tool.args.flag == true',
        'content matches "x+"', 'content.startswith(["a", "b"])', 'metadata.tier < "b"',
        "d(content).count > 1",
        "d(content).any(X)", "messages.length >= 2", "tool.args.n > -2.5", '"team" in metadata',
        'tool.name in ["a", "b"]', "true", "false", "1 > 2", '"abc" matches "(a+)+$"', '"a" in ["a"]',
        'any(m in messages: m.role == "user" and d(m.content).found)',
        'all(h in tool.args.hosts: h.endswith(".c"))',
        "d(tool.args_text).score >= 0.5", 'messages[-1].content.lower().contains("x")', "d(messages).found",
    ]
)  # fmt: skip
expression = st.recursive(
    st.one_of(typed_leaf, typed_leaf, typed_leaf, comparison),
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"({a} or {b})", inner, inner),
        st.builds(lambda a: f"not {a}", inner),
        st.builds(lambda q, it, b: f"{q}(m in {it}: {b})", st.sampled_from(["any", "all"]), atom, inner),
    ),
    max_leaves=6,
)


def assert_valid(diagnostics: list[Diagnostic], text: str) -> None:
    lines = text.count("\n") + text.count("\r") + 2
    for d in diagnostics:
        span = d.span
        assert d.code, d
        assert span.line >= 1 and span.column >= 1, d
        assert span.end_line >= span.line, d
        assert span.line <= lines, d
        if span.end_line == span.line:
            assert span.end_column >= span.column, d


def assert_parses_or_explains(text: str) -> None:
    module, diagnostics = parse("fuzz.pal", text)
    if module is None:
        assert diagnostics, "a failed parse must say why"
    else:
        assert diagnostics == []
    assert_valid(diagnostics, text)


@EXAMPLES
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    assert_parses_or_explains(text)


@EXAMPLES
@given(soup)
def test_token_soup_never_raises(text: str) -> None:
    assert_parses_or_explains(text)


@EXAMPLES
@given(soup)
def test_token_soup_inside_a_ruleset_never_raises(body: str) -> None:
    assert_parses_or_explains(f'ruleset t version "1" {{\n{body}\n}}')
    assert_parses_or_explains(f'ruleset t version "1" {{ rule r on input {{ when {body} then block }} }}')


def compile_text(text: str) -> None:
    c = run("fuzz.pal", reader=lambda path: text if path == "fuzz.pal" else "")
    if not c.ok:
        assert any(d.is_error for d in c.diagnostics)
    else:
        assert c.graph is not None and c.graph.content_hash
    assert_valid(c.diagnostics, text)


@EXAMPLES
@given(expression, st.sampled_from(["tool_call", "input, tool_call", "output, tool_result"]))
def test_generated_conditions_compile_or_explain(condition: str, stages: str) -> None:
    text = (
        'ruleset t version "1" {\n'
        '  detector d = regex(pattern: "\\\\d+", type: X)\n'
        f"  rule r on {stages} {{\n    when {condition} then block\n"
        "    when d(content).found then fallback redact\n  }\n}\n"
    )
    compile_text(text)


@EXAMPLES
@given(soup)
def test_compiler_never_raises_on_soup(body: str) -> None:
    compile_text(
        'ruleset t version "1" { detector d = keywords(words: ["x"])\n'
        f" rule r on input {{ when {body} then block }} }}"
    )
