"""The evaluator never raises: arbitrary requests (tool arguments of any JSON shape, any messages)
against a ruleset that touches every field, operator and method get a decision."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.compiler import compile_source
from dsl.types import Outcome, Stage
from engine.runtime.decision import Decision
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import request_from_dict

RULESET = """\
ruleset fuzz version "1" {
  default fallback reply "default"
  on error escalate to "ops" within 1m
  detector kw = keywords(words: ["drop", "rm -rf"], type: DANGER)
  detector num = regex(pattern: "\\\\d{3,}", type: NUMBER)
  detector keys = secrets()
  rule fields on input, output, retrieval, tool_call, tool_result {
    when stage == "input" and content.length > 50 then allow "long input"
    when messages[0].role == "system" and messages[-1].content.lower().contains("x") then block "a"
    when messages[3].content == "" or messages[-7].role != "user" then allow "b"
    when principal.roles[2] == "r" and principal.attributes.team < "m" then escalate to "q" within 1s
    when metadata.a >= metadata.b and "k" in metadata and metadata["z"] == "" then allow "c"
    when principal.id.startswith(principal.roles) or principal.tenant.endswith(["a", "b"]) then allow "d"
  }
  rule tools on tool_call, tool_result {
    when tool.args.a == tool.args.b and tool.args.a != 1 then block "e"
    when tool.args.n > 3 or tool.args.n <= -1.5 or tool.args.s < "m" or tool.args.x >= tool.args.y
      then allow "f"
    when tool.args.list[0] in [1, 2.5] or tool.args.list[-1] not in tool.args.other then allow "g"
    when "k" in tool.args or tool.args.s in tool.args.t or tool.args.t.contains(tool.args.s) then allow "h"
    when any(x in tool.args.list: x.y.z == true or x[0] > 2) and all(y in tool.args.other: y.trim() == "")
      then allow "i"
    when tool.args.s.upper().startswith(tool.args.t) or tool.args.s.length >= 3 or tool.args.list.length < 2
      then allow "j"
    when tool.args_text matches "(?i)secret" or tool.name == tool.server then block "k"
    when tool.args.s matches "^a+$" or tool.args.list[tool.args.n] == "x" then allow "l"
  }
  rule detectors on input, output, retrieval, tool_call, tool_result {
    when kw(content).found and kw(content).count >= 2 then block "m"
    when num(tool.args.s).any(NUMBER) or num(tool.args_text).score > 0.5 then escalate to "q" within 1s
    when "DANGER" in kw(messages).types or kw(messages).types.contains("DANGER") then block "n"
    when any(m in messages: kw(m.content).found and m.role == "user") then block "o"
    when keys(content).found then fallback redact
    when num(content).found then fallback redact num, keys, kw
  }
}
"""
EVALUATOR = Evaluator(compile_source(RULESET))

json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["a", "drop", "123456", "secret", "AKIAABCDEFGHIJKLMNOP", "x"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "x", "y", "z", "0"]), inner, max_size=4)
    ),
    max_leaves=10,
)
keys = st.sampled_from(["a", "b", "n", "s", "t", "x", "y", "list", "other", "k"])
text = st.text(max_size=30) | st.sampled_from(
    ["rm -rf /", "drop drop", "123-456", "AKIAABCDEFGHIJKLMNOP x", "aaa"]
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", ""]), "content": text}
)
request = st.fixed_dictionaries(
    {"stage": st.sampled_from([s.value for s in Stage])},
    optional={
        "text": text,
        "messages": st.lists(message, max_size=5),
        "tool": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["", "x", "shell"]),
                "server": st.sampled_from(["", "x"]),
                "arguments": st.dictionaries(keys, json_value, max_size=6),
            },
        ),
        "principal": st.fixed_dictionaries(
            {},
            optional={
                "id": st.text(max_size=5),
                "tenant": st.text(max_size=5),
                "roles": st.lists(st.sampled_from(["r", "admin", "", "x"]), max_size=4),
                "attributes": st.dictionaries(
                    st.sampled_from(["team", "x"]), st.text(max_size=3), max_size=2
                ),
            },
        ),
        "metadata": st.dictionaries(st.sampled_from(["a", "b", "k", "z"]), st.text(max_size=4), max_size=4),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request)
def test_any_request_gets_a_decision(data: dict[str, Any]) -> None:
    decision = EVALUATOR.evaluate(request_from_dict(data))
    assert isinstance(decision, Decision)
    assert decision.outcome in Outcome
    if decision.matches:
        assert decision.outcome == max(m.outcome for m in decision.matches)
    # a tool argument of the wrong shape is false, never an error: errors come from detectors only
    assert all(e.code in ("detector_error", "deadline_exceeded", "regex_timeout") for e in decision.errors)
    decision.summary()


# Generated rules: conditions built from typed pieces, so that nearly all of them compile.
leaf = st.sampled_from(
    [
        'content == "x"', '"admin" in principal.roles', "kw(content).found", "tool.args.flag == true",
        'content matches "x+"', 'content.startswith(["a", "b"])', 'metadata.a < "b"', "kw(content).count > 1",
        "kw(content).any(DANGER)", "messages.length >= 2", "tool.args.n > -2.5", '"k" in metadata',
        'tool.name in ["a", "b"]', 'messages[-1].content.lower().contains("x")', "num(messages).found",
        'any(m in messages: m.role == "user" and kw(m.content).found)', "num(tool.args_text).score >= 0.5",
        'all(h in tool.args.list: h.endswith(".c") or h == 1)', 'tool.args.list[tool.args.n] == "x"',
        "tool.args.a != tool.args.b", '"DANGER" in kw(content).types', "kw(messages).types.length == 1",
        "keys(content).found", 'tool.args.s matches "^(a+)+$"', "tool.args.list.contains(tool.args.s)",
    ]
)  # fmt: skip
condition = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a} and {b})", inner, inner),
        st.builds(lambda a, b: f"({a} or {b})", inner, inner),
        st.builds(lambda a: f"not {a}", inner),
        st.builds(lambda q, b: f"{q}(x in tool.args.list: {b})", st.sampled_from(["any", "all"]), inner),
    ),
    max_leaves=5,
)
ACTIONS = [
    "block",
    'escalate to "q" within 1s',
    'fallback reply "r"',
    "fallback redact kw, num, keys",
    "allow",
]
ALL_STAGES = "input, output, tool_call, tool_result, retrieval"


def generated_ruleset(arms: list[tuple[str, int]], default: int, lenient: bool) -> str:
    rules = "\n".join(
        f"  rule r{i} on {ALL_STAGES} {{ when {cond} then {ACTIONS[action]} }}"
        for i, (cond, action) in enumerate(arms)
    )
    return (
        f'ruleset g version "1" {{\n  default {ACTIONS[default].replace("kw, num, keys", "keys")}\n'
        f"  on error {'allow' if lenient else 'block'}\n"
        '  detector kw = keywords(words: ["drop", "rm -rf"], type: DANGER)\n'
        '  detector num = regex(pattern: "\\\\d{3,}", type: NUMBER)\n'
        "  detector keys = secrets()\n"
        f"{rules}\n}}\n"
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(condition, st.integers(0, len(ACTIONS) - 1)), min_size=1, max_size=4),
    st.integers(0, len(ACTIONS) - 1),
    st.booleans(),
    request,
)
def test_generated_rules_never_raise(
    arms: list[tuple[str, int]], default: int, lenient: bool, data: Any
) -> None:
    graph = compile_source(generated_ruleset(arms, default, lenient))
    decision = Evaluator(graph).evaluate(request_from_dict(data))
    assert decision.outcome in Outcome
    deciding = decision.deciding
    if decision.outcome is Outcome.FALLBACK and decision.action and decision.action.redact:
        assert decision.redacted is not None or decision.errors
    assert decision.default_applied == (not decision.matches)
    assert bool(deciding) or decision.default_applied
