"""Linking: a decision graph's expressions become Python closures over a per-request environment."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

import regex

from detectors.base import DetectorResult
from dsl import ir
from dsl.types import DYN
from engine.request import Message, Request

Fn = Callable[["Env"], Any]
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class EvalFailure(Exception):
    """A detector or a regex could not give a trustworthy answer; the error policy decides."""

    def __init__(self, source: str, code: str, message: str) -> None:
        super().__init__(message)
        self.source, self.code, self.message = source, code, message


class Env:
    """Per-request state: the request, variables of quantifiers, and the detector results so far."""

    __slots__ = ("content", "detect", "regex_timeout_s", "request", "vars")

    def __init__(
        self,
        request: Request,
        detect: Callable[[str], DetectorResult],
        regex_timeout_s: float,
    ) -> None:
        self.request = request
        self.content = request.content
        self.detect = detect
        self.regex_timeout_s = regex_timeout_s
        self.vars: dict[str, Any] = {}


def to_text(value: Any) -> str:
    """What a detector scans for a value: text as is, lists joined by lines, JSON for the rest."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "\n".join(
            v.content if isinstance(v, Message) else v if isinstance(v, str) else to_text(v) for v in value
        )
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def dig(value: Any, key: Any) -> Any:
    """One step into dynamic data; a missing key or a wrong shape gives None, never an error."""
    if isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, list | tuple) and isinstance(key, int) and -len(value) <= key < len(value):
        return value[key]
    return None


# Fields


def _root(name: str) -> Fn:
    getters: dict[str, Fn] = {
        "content": lambda env: env.content,
        "messages": lambda env: env.request.messages,
        "stage": lambda env: env.request.stage.value,
        "tool": lambda env: env.request.tool,
        "principal": lambda env: env.request.principal,
        "metadata": lambda env: env.request.metadata,
    }
    return getters[name]


def _field(path: tuple[str, ...]) -> Fn:
    root, *rest = path
    if root == "tool" and rest:
        return _tool_field(rest)
    fn = _root(root)
    for i, name in enumerate(rest):
        fn = _step(fn, name, structured=(root == "principal" and i == 0))
    return fn


def _tool_field(rest: list[str]) -> Fn:
    head, *tail = rest
    if head == "args_text":
        return lambda env: env.request.tool_args_text
    if head == "args":
        fn: Fn = lambda env: env.request.tool.arguments if env.request.tool else None  # noqa: E731
        for name in tail:
            fn = _step(fn, name, structured=False)
        return fn
    return lambda env: getattr(env.request.tool, head) if env.request.tool else ""


def _step(inner: Fn, name: str, *, structured: bool) -> Fn:
    if structured:
        return lambda env: getattr(inner(env), name)
    return lambda env: dig(inner(env), name)


# Expressions


def link(expr: ir.Expr, regexes: dict[str, Any]) -> Fn:
    """Turn an IR expression into a closure. Boolean results are exactly True or False."""
    match expr:
        case ir.Const(value=value):
            return lambda env: value
        case ir.Field(path=path):
            return _field(path)
        case ir.Var(name=name):
            return lambda env: env.vars.get(name)
        case ir.Member(obj=obj, name=name):
            return _member(link(obj, regexes), name, obj.type)
        case ir.Detect(node=node):
            return lambda env: env.detect(node)
        case ir.Method():
            return _method(expr, regexes)
        case ir.Index(obj=obj, index=index):
            obj_fn, index_fn = link(obj, regexes), link(index, regexes)
            return lambda env: dig(obj_fn(env), index_fn(env))
        case ir.ListOf(items=items):
            return _list(items, regexes)
        case ir.And(items=items) | ir.Or(items=items):
            return _junction([_truth(i, regexes) for i in items], isinstance(expr, ir.Or))
        case ir.Not(operand=operand):
            inner = _truth(operand, regexes)
            return lambda env: not inner(env)
        case ir.Cmp():
            return _compare(expr, regexes)
        case ir.Match(subject=subject, pattern=pattern):
            return _match(link(subject, regexes), pattern, regexes)
        case ir.Quant():
            return _quant(expr, regexes)
    raise TypeError(f"cannot link {expr!r}")


def _truth(expr: ir.Expr, regexes: dict[str, Any]) -> Fn:
    fn = link(expr, regexes)
    if expr.type == DYN:
        return lambda env: fn(env) is True
    return fn


def _member(obj_fn: Fn, name: str, owner: Any) -> Fn:
    if owner.kind in ("message", "detector result"):
        if name == "count":
            return lambda env: len(obj_fn(env).findings)
        return lambda env: getattr(obj_fn(env), name)
    return lambda env: dig(obj_fn(env), name)


def _list(items: tuple[ir.Expr, ...], regexes: dict[str, Any]) -> Fn:
    if all(isinstance(i, ir.Const) for i in items):
        values = tuple(i.value for i in items if isinstance(i, ir.Const))
        return lambda env: values
    fns = [link(i, regexes) for i in items]
    return lambda env: tuple(f(env) for f in fns)


def _junction(fns: list[Fn], is_or: bool) -> Fn:
    if len(fns) == 2:
        a, b = fns
        if is_or:
            return lambda env: bool(a(env) or b(env))
        return lambda env: bool(a(env) and b(env))
    if is_or:
        return lambda env: any(f(env) for f in fns)
    return lambda env: all(f(env) for f in fns)


def _compare(expr: ir.Cmp, regexes: dict[str, Any]) -> Fn:
    left, right = link(expr.left, regexes), link(expr.right, regexes)
    if expr.op in ("in", "not in"):
        contains = _membership(expr.right, right)
        if expr.op == "in":
            return lambda env: contains(left(env), env)
        return lambda env: not contains(left(env), env)
    if expr.op == "==":
        return lambda env: bool(left(env) == right(env))
    if expr.op == "!=":
        return lambda env: bool(left(env) != right(env))
    order = _ORDER[expr.op]

    def ordered(env: Env) -> bool:
        a, b = left(env), right(env)
        same = isinstance(a, str) == isinstance(b, str) and not isinstance(a, bool | type(None))
        return same and isinstance(b, int | float | str) and order(a, b)

    return ordered


def _membership(container: ir.Expr, container_fn: Fn) -> Callable[[Any, Env], bool]:
    if isinstance(container, ir.ListOf) and all(isinstance(i, ir.Const) for i in container.items):
        values = frozenset(i.value for i in container.items if isinstance(i, ir.Const))
        return lambda item, env: _hashable(item) and item in values

    def contains(item: Any, env: Env) -> bool:
        haystack = container_fn(env)
        if isinstance(haystack, str):
            return isinstance(item, str) and item in haystack
        if isinstance(haystack, Mapping | list | tuple | frozenset):
            return _hashable(item) and item in haystack
        return False

    return contains


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _match(subject: Fn, pattern: str, regexes: dict[str, Any]) -> Fn:
    compiled = regexes.setdefault(pattern, regex.compile(pattern))

    def matches(env: Env) -> bool:
        text = subject(env)
        if not isinstance(text, str):
            return False
        try:
            return compiled.search(text, timeout=env.regex_timeout_s) is not None
        except TimeoutError:
            message = f"regex {pattern!r} timed out after {env.regex_timeout_s}s"
            raise EvalFailure(f"matches {pattern!r}", "regex_timeout", message) from None

    return matches


def _method(expr: ir.Method, regexes: dict[str, Any]) -> Fn:
    obj = link(expr.obj, regexes)
    args = [link(a, regexes) for a in expr.args]
    name = expr.name
    if name == "any":
        wanted = frozenset(a.value for a in expr.args if isinstance(a, ir.Const))
        return lambda env: not wanted.isdisjoint(obj(env).types)
    if name == "length":
        return lambda env: len(v) if isinstance(v := obj(env), str | list | tuple | Mapping) else 0
    if name == "contains" and expr.obj.type.kind == "list":
        (arg,) = args
        return lambda env: _hashable(a := arg(env)) and a in (obj(env) or ())
    return _string_method(obj, name, args)


def _string_method(obj: Fn, name: str, args: list[Fn]) -> Fn:
    if name in ("lower", "upper", "trim"):
        op: Callable[[str], str] = getattr(str, {"trim": "strip"}.get(name, name))
        return lambda env: op(v) if isinstance(v := obj(env), str) else None
    (arg,) = args
    if name == "contains":
        return lambda env: isinstance(v := obj(env), str) and isinstance(a := arg(env), str) and a in v
    method = str.startswith if name == "startswith" else str.endswith

    def affix(env: Env) -> bool:
        value, wanted = obj(env), arg(env)
        if isinstance(wanted, list | tuple):
            wanted = tuple(w for w in wanted if isinstance(w, str))
        return isinstance(value, str) and isinstance(wanted, str | tuple) and method(value, wanted)

    return affix


def _quant(expr: ir.Quant, regexes: dict[str, Any]) -> Fn:
    iterable, body, var = link(expr.iterable, regexes), _truth(expr.body, regexes), expr.var
    want_any = expr.kind == "any"

    def quantify(env: Env) -> bool:
        items = iterable(env)
        if not isinstance(items, list | tuple):
            return False
        saved = env.vars.get(var)
        try:
            for item in items:
                env.vars[var] = item
                if bool(body(env)) is want_any:
                    return want_any
            return not want_any
        finally:
            env.vars[var] = saved

    return quantify
