"""The emitter: rules as generated Python source over the linker's closures, one compile() for many."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dsl import ir
from dsl.types import DYN, STRING, STRINGS
from engine.runtime.linker import (
    CONTAINERS_FAST,
    ORDER,
    SCALARS,
    SIZED_FAST,
    Env,
    EvalFailure,
    Fn,
    const_value,
    contains,
    is_const,
    link,
    link_quant,
    ordered,
)

RuleFn = Callable[[Env], int]
SegmentFn = Callable[[Env], list[tuple[int, "int | EvalFailure"]]]

_SIZED = (str, list, tuple, Mapping)  # what .length measures
_MAX_SEGMENT = 64  # rules per generated segment function


def link_arms(conditions: Sequence[ir.Expr], regexes: dict[str, Any]) -> RuleFn:
    """One function for a rule's arms: the index of the first arm whose condition holds, or -1.

    Exactly ``next((i for i, c in enumerate(conditions) if link(c, regexes)(env)), -1)``, errors
    included (an EvalFailure propagates from the arm that raised it).
    """
    try:
        emitter = _Emitter(regexes)
        lines = ["def rule(env):", *emitter.arms(conditions, "return {}", "    "), "    return -1"]
        rule: RuleFn = emitter.build("\n".join(lines), "rule")
        return rule
    except (SyntaxError, RecursionError, MemoryError, ValueError):  # too deep for Python's compiler
        fns = tuple(link(c, regexes) for c in conditions)
        return lambda env: next((i for i, fn in enumerate(fns) if fn(env)), -1)


def link_rules(rules: Sequence[Sequence[ir.Expr]], regexes: dict[str, Any]) -> list[RuleFn]:
    """link_arms() of each rule's conditions, compiled as one source: one compile() for them all."""
    if not rules:
        return []
    try:
        emitter = _Emitter(regexes)
        lines: list[str] = []
        for i, conditions in enumerate(rules):
            lines += [f"def rule_{i}(env):", *emitter.arms(conditions, "return {}", "    "), "    return -1"]
        emitter.build("\n".join(lines), "rule_0")
        return [emitter.namespace[f"rule_{i}"] for i in range(len(rules))]
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return [link_arms(conditions, regexes) for conditions in rules]


def link_segment(rules: Sequence[Sequence[ir.Expr]], regexes: dict[str, Any]) -> SegmentFn:
    """One function for consecutive rules that use no detector (every one of them always runs).

    It returns, in rule order, ``(rule position, arm index)`` for each rule that matched and
    ``(rule position, EvalFailure)`` for each rule whose condition failed: exactly what calling
    link_arms() of each rule in turn gives, with no Python call per rule.
    """
    try:
        emitter = _Emitter(regexes)
        segment: SegmentFn = emitter.build("\n".join(emitter.segment(rules, "segment")), "segment")
        return segment
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        fns = tuple(link_arms(conditions, regexes) for conditions in rules)
        return lambda env: _run_segment(fns, env)


def _run_segment(fns: tuple[RuleFn, ...], env: Env) -> list[tuple[int, int | EvalFailure]]:
    hits: list[tuple[int, int | EvalFailure]] = []
    for position, fn in enumerate(fns):
        try:
            index = fn(env)
        except EvalFailure as failure:
            hits.append((position, failure))
        else:
            if index >= 0:
                hits.append((position, index))
    return hits


def segments(rules: Sequence[Sequence[ir.Expr]], regexes: dict[str, Any]) -> list[tuple[int, SegmentFn]]:
    """link_segment() over ``rules`` in chunks of at most _MAX_SEGMENT: (first position, function).

    The chunks are compiled as one source (one compile() call for them all).
    """
    starts = range(0, len(rules), _MAX_SEGMENT)
    try:
        emitter = _Emitter(regexes)
        lines: list[str] = []
        for n, start in enumerate(starts):
            lines += emitter.segment(rules[start : start + _MAX_SEGMENT], f"segment_{n}")
        if lines:
            emitter.build("\n".join(lines), "segment_0")
        return [(start, emitter.namespace[f"segment_{n}"]) for n, start in enumerate(starts)]
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return [(start, link_segment(rules[start : start + _MAX_SEGMENT], regexes)) for start in starts]


class _Emitter:
    """Writes expressions as Python source over ``env``; temporaries are locals of the function."""

    def __init__(self, regexes: dict[str, Any]) -> None:
        self.regexes = regexes
        self.count = 0
        self.namespace: dict[str, Any] = {
            "_EvalFailure": EvalFailure,
            "contains": contains,
            "ordered": ordered,
            "SCALARS": SCALARS,
            "_SIZED": _SIZED,
            "SIZED_FAST": SIZED_FAST,
            "CONTAINERS_FAST": CONTAINERS_FAST,
        }

    def build(self, source: str, name: str) -> Any:
        exec(compile(source, f"<palisade {name}>", "exec"), self.namespace)
        return self.namespace[name]

    def segment(self, rules: Sequence[Sequence[ir.Expr]], name: str) -> list[str]:
        """The source of a link_segment() function called ``name``."""
        lines = [f"def {name}(env):", "    hits = []"]
        for position, conditions in enumerate(rules):
            lines.append("    try:")
            lines += self.arms(conditions, f"hits.append(({position}, {{}}))", "        ", chain=True)
            lines += ["    except _EvalFailure as failure:", f"        hits.append(({position}, failure))"]
        lines.append("    return hits")
        return lines

    def arms(self, conditions: Sequence[ir.Expr], then: str, indent: str, chain: bool = False) -> list[str]:
        """``if`` per arm, the first that holds wins (``elif`` when ``chain``, else each returns)."""
        lines = []
        for index, condition in enumerate(conditions):
            keyword_ = "elif" if chain and index else "if"
            lines += [f"{indent}{keyword_} {self.expr(condition)}:", f"{indent}    {then.format(index)}"]
        if not lines:
            lines.append(f"{indent}pass")
        return lines

    def ref(self, value: Any) -> str:
        """A namespace name bound to ``value``."""
        self.count += 1
        name = f"_k{self.count}"
        self.namespace[name] = value
        return name

    def temp(self) -> str:
        self.count += 1
        return f"_t{self.count}"

    def closure(self, expr: ir.Expr) -> str:
        return f"{self.ref(link(expr, self.regexes))}(env)"

    def truth(self, expr: ir.Expr) -> str:
        code = self.expr(expr)
        return f"({code} is True)" if expr.type == DYN else code

    def expr(self, expr: ir.Expr) -> str:
        match expr:
            case ir.Const(value=value):
                return self.ref(value)
            case ir.Detect(node=node):
                return f"env.detect({self.ref(node)})"
            case ir.Member(obj=ir.Detect() as obj, name="found"):
                return f"{self.expr(obj)}.found"
            case ir.Member(obj=ir.Detect() as obj, name="count"):
                return f"len({self.expr(obj)}.findings)"
            case ir.ListOf(items=items) if all(isinstance(i, ir.Const) for i in items):
                return self.ref(tuple(i.value for i in items if isinstance(i, ir.Const)))
            case ir.And(items=items) | ir.Or(items=items) if items:
                word = " or " if isinstance(expr, ir.Or) else " and "
                return "bool(" + word.join(self.truth(i) for i in items) + ")"
            case ir.Not(operand=operand):
                return f"(not {self.truth(operand)})"
            case ir.Cmp():
                code = self.compare(expr)
                if code is not None:
                    return code
            case ir.Method():
                code = self.method(expr)
                if code is not None:
                    return code
            case ir.Quant():
                body = self.function(expr.body)
                return f"{self.ref(link_quant(expr, self.regexes, body))}(env)"
        # request fields, dynamic values, indexing, regexes, quantifiers: their link() closures
        return self.closure(expr)

    def function(self, expr: ir.Expr) -> Fn:
        """``link(expr)`` as one generated function (a quantifier's body, run once per item)."""
        self.count += 1
        name = f"_body{self.count}"
        self.build(f"def {name}(env):\n    return {self.truth(expr)}", name)
        fn: Fn = self.namespace[name]
        return fn

    def compare(self, expr: ir.Cmp) -> str | None:
        op, left, right = expr.op, expr.left, expr.right
        if op in ("==", "!=") and _typed(left, STRING) and _typed(right, STRING):
            return f"bool({self.expr(left)} {op} {self.expr(right)})"
        if op in ("<", "<=", ">", ">="):
            return f"ordered({self.ref(ORDER[op])}, {self.expr(left)}, {self.expr(right)})"
        if op not in ("in", "not in") or not _typed(left, STRING):
            return None
        if isinstance(right, ir.ListOf) and all(
            isinstance(i, ir.Const) and isinstance(i.value, str) for i in right.items
        ):
            values = self.ref(frozenset(i.value for i in right.items if isinstance(i, ir.Const)))
            t = self.temp()
            code = f"(isinstance({t} := {self.expr(left)}, SCALARS) and {t} in {values})"
        elif isinstance(left, ir.Const) and isinstance(left.value, str) and right.type == STRINGS:
            item, h, haystack = self.expr(left), self.temp(), self.expr(right)
            fast = f"type({h} := {haystack}) in CONTAINERS_FAST"
            code = f"(({item} in {h}) if {fast} else contains({item}, {h}))"
        else:
            return None
        return f"(not {code})" if op == "not in" else code

    def method(self, expr: ir.Method) -> str | None:
        name = expr.name
        if expr.obj.type != STRING or not all(a.type in (STRING, STRINGS) for a in expr.args):
            return None  # lists, messages, detector results, dynamic values: their closures
        obj, t = self.expr(expr.obj), self.temp()
        if name == "length":
            return f"(len({t}) if type({t} := {obj}) in SIZED_FAST or isinstance({t}, _SIZED) else 0)"
        if name in ("lower", "upper", "trim"):
            op = self.ref(getattr(str, {"trim": "strip"}.get(name, name)))
            return f"({op}({t}) if isinstance({t} := {obj}, str) else None)"
        if name == "contains":
            a = self.temp()
            arg = self.expr(expr.args[0])
            return f"(isinstance({t} := {obj}, str) and isinstance({a} := {arg}, str) and {a} in {t})"
        if name in ("startswith", "endswith") and is_const(expr.args[0]):
            wanted = const_value(expr.args[0])
            if isinstance(wanted, list | tuple):
                wanted = tuple(w for w in wanted if isinstance(w, str))
            if isinstance(wanted, str | tuple):
                method = self.ref(str.startswith if name == "startswith" else str.endswith)
                return f"(isinstance({t} := {obj}, str) and {method}({t}, {self.ref(wanted)}))"
        return None


def _typed(expr: ir.Expr, wanted: Any) -> bool:
    """Statically of type ``wanted``: a literal or a typed field, never a dynamic value."""
    return expr.type == wanted and not isinstance(expr, ir.Var)
