"""The linker: a decision graph's expressions become Python closures over a per-request environment."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

import regex

from detectors import textforms
from detectors.base import DeadlineExceeded, DetectorResult
from detectors.textscan import literal_screen, run_timed
from dsl import ir
from dsl.types import ATTRIBUTES, DYN
from engine.runtime.request import Message, Request

Fn = Callable[["Env"], Any]
ORDER: dict[str, Callable[[Any, Any], bool]] = {
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
        return value.get(key) if isinstance(key, str) else None  # JSON keys are strings
    if isinstance(value, list | tuple) and isinstance(key, int) and -len(value) <= key < len(value):
        return value[key]
    return None


# Fields
#
# Structured fields are read with operator.attrgetter (no Python frame per read); the maps and the
# dynamic tool arguments go through dig. A plain dict (what validated requests hold) is read directly.

SCALARS = (str, int, float)  # what _hashable accepts (bool is an int)
SIZED_FAST = (str, list, tuple, dict)
CONTAINERS_FAST = (tuple, list, frozenset, dict)


def _root(name: str) -> Fn:
    getters: dict[str, Fn] = {
        "content": operator.attrgetter("content"),
        "messages": operator.attrgetter("request.messages"),
        "stage": operator.attrgetter("request.stage.value"),
        "tool": operator.attrgetter("request.tool"),
        "principal": operator.attrgetter("request.principal"),
        "metadata": operator.attrgetter("request.metadata"),
    }
    return getters[name]


def _field(path: tuple[str, ...]) -> Fn:
    root, *rest = path
    if root == "tool" and rest:
        return _tool_field(rest)
    if root == "principal" and rest:
        fn: Fn = operator.attrgetter(f"request.principal.{rest[0]}")
        rest = rest[1:]
    else:
        fn = _root(root)
    if _is_map_entry(path):  # fn reads the map, rest is [key]
        return _map_entry(fn, rest[0])
    for name in rest:
        fn = _step(fn, name, structured=False)
    return fn


def _is_map_entry(path: tuple[str, ...]) -> bool:
    """``metadata.<key>`` and ``principal.attributes.<key>``: strings, "" when the key is missing."""
    return (path[0] == "metadata" and len(path) == 2) or (
        path[:2] == ("principal", "attributes") and len(path) == 3
    )


def _or_empty(fn: Fn) -> Fn:
    return lambda env: "" if (value := fn(env)) is None else value


def _map_entry(get_map: Fn, key: str) -> Fn:
    """``_or_empty(_step(get_map, key))`` in one call: the entry of the map, "" when it is missing."""

    def entry(env: Env) -> Any:
        value = get_map(env)
        value = value.get(key) if type(value) is dict else dig(value, key)
        return "" if value is None else value

    return entry


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

    def step(env: Env) -> Any:
        value = inner(env)
        return value.get(name) if type(value) is dict else dig(value, name)

    return step


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
        case ir.Member(obj=ir.Detect(node=node), name=name):
            return _detect_member(node, name)
        case ir.Member(obj=obj, name=name):
            return _member(link(obj, regexes), name, obj.type)
        case ir.Detect(node=node):
            return lambda env: env.detect(node)
        case ir.Method():
            return _method(expr, regexes)
        case ir.Index(obj=obj, index=index):
            obj_fn, index_fn = link(obj, regexes), link(index, regexes)
            if obj.type == ATTRIBUTES:  # metadata["key"]: "" when missing, like metadata.key
                return _or_empty(lambda env: dig(obj_fn(env), index_fn(env)))
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
            return link_quant(expr, regexes)
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
        if name == "types":
            return lambda env: _types(obj_fn(env))
        return lambda env: getattr(obj_fn(env), name, None)  # messages[9] is None: no role
    return lambda env: dig(obj_fn(env), name)


def _types(result: DetectorResult) -> tuple[str, ...]:
    """``.types`` is a list in the language: the finding types, each once, sorted."""
    return tuple(sorted(result.types))


def _detect_member(node: str, name: str) -> Fn:
    if name == "count":
        return lambda env: len(env.detect(node).findings)
    if name == "types":
        return lambda env: _types(env.detect(node))
    get = operator.attrgetter(name)
    return lambda env: get(env.detect(node))


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
        return _membership(expr, left, right)
    if DYN in (expr.left.type, expr.right.type) and expr.op in ("==", "!="):
        if expr.op == "==":
            return lambda env: _equal(left(env), right(env))
        return lambda env: not _equal(left(env), right(env))
    if isinstance(expr.right, ir.Const) and expr.op in ("==", "!="):
        value = expr.right.value
        if expr.op == "==":
            return lambda env: bool(left(env) == value)
        return lambda env: bool(left(env) != value)
    if expr.op == "==":
        return lambda env: bool(left(env) == right(env))
    if expr.op == "!=":
        return lambda env: bool(left(env) != right(env))
    order = ORDER[expr.op]
    return lambda env: ordered(order, left(env), right(env))


def ordered(order: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    """``<``, ``<=``, ``>``, ``>=``: numbers with numbers, strings with strings, else false."""
    if isinstance(a, str):
        return isinstance(b, str) and order(a, b)
    # _is_number(a) and _is_number(b), written out: this runs for every ordering
    return (
        isinstance(a, _NUMBERS)
        and a.__class__ is not bool
        and isinstance(b, _NUMBERS)
        and b.__class__ is not bool
        and order(a, b)
    )


_NUMBERS = (int, float)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and value.__class__ is not bool


def _equal(a: Any, b: Any) -> bool:
    """``==`` on dynamic values: as in Python, except that a boolean never equals a number."""
    return bool(a == b) and (a.__class__ is bool) is (b.__class__ is bool)


def _bool_guard(values: frozenset[Any]) -> bool | None:
    """For a literal list (one type): True if only booleans may match, False if only non-booleans."""
    if any(v.__class__ is bool for v in values):
        return True
    return False if any(isinstance(v, int | float) for v in values) else None


def _membership(expr: ir.Cmp, left: Fn, right: Fn) -> Fn:
    """``x in C`` / ``x not in C``: the item is evaluated first, then the container."""
    negate = expr.op == "not in"
    container = expr.right
    if isinstance(container, ir.ListOf) and all(isinstance(i, ir.Const) for i in container.items):
        values = frozenset(i.value for i in container.items if isinstance(i, ir.Const))
        guard = _bool_guard(values)
        if guard is not None:  # a boolean is not a number

            def member(item: Any) -> bool:
                return isinstance(item, SCALARS) and (item.__class__ is bool) is guard and item in values

            if negate:
                return lambda env: not member(left(env))
            return lambda env: member(left(env))
        if negate:
            return lambda env: not (isinstance(item := left(env), SCALARS) and item in values)
        return lambda env: isinstance(item := left(env), SCALARS) and item in values
    if isinstance(expr.left, ir.Const):
        item, text = expr.left.value, isinstance(expr.left.value, str)

        def contains_const(env: Env) -> bool:
            haystack = right(env)
            if text and type(haystack) in CONTAINERS_FAST:
                return (item in haystack) is not negate
            return contains(item, haystack) is not negate

        return contains_const
    if negate:
        return lambda env: not contains(left(env), right(env))
    return lambda env: contains(left(env), right(env))


def contains(item: Any, haystack: Any) -> bool:
    if type(haystack) in CONTAINERS_FAST:
        if item.__class__ is not str and type(haystack) in (list, tuple):  # a boolean is not a number
            return isinstance(item, SCALARS) and any(_equal(item, h) for h in haystack)
        return isinstance(item, SCALARS) and item in haystack
    if isinstance(haystack, str):
        return isinstance(item, str) and item in haystack
    if isinstance(haystack, Mapping | list | tuple | frozenset):
        return _hashable(item) and item in haystack
    return False


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _match(subject: Fn, pattern: str, regexes: dict[str, Any]) -> Fn:
    compiled = regexes.get(pattern)
    if compiled is None:
        compiled = regexes[pattern] = regex.compile(pattern)
    search = compiled.search
    # False when the text lacks every literal that a match needs: the answer without a search (which
    # then cannot time out either); detectors.textscan.literal_screen
    screen = literal_screen(pattern)

    def matches(env: Env) -> bool:
        text = subject(env)
        if not isinstance(text, str) or (screen is not None and not screen(text)):
            return False

        def found(concurrent: bool, timeout_s: float) -> bool:
            # search(string, pos, endpos, concurrent, partial, timeout): positional is cheaper
            return search(text, None, None, concurrent, False, timeout_s) is not None

        try:
            return run_timed(found, text, env.regex_timeout_s)
        except TimeoutError as exc:
            raise EvalFailure(f"matches {pattern!r}", "regex_timeout", f"regex {pattern!r} {exc}") from None
        except DeadlineExceeded as exc:  # the request's deadline, not the regex's timeout
            raise EvalFailure(
                f"matches {pattern!r}", "deadline_exceeded", f"regex {pattern!r}: {exc}"
            ) from None

    return matches


def _method(expr: ir.Method, regexes: dict[str, Any]) -> Fn:
    # _Emitter.method writes the string cases (a string receiver, string arguments) out inline, and
    # _Emitter.compare the string ==, != and `in`: a change to their meaning here goes there too.
    obj = link(expr.obj, regexes)
    args = [link(a, regexes) for a in expr.args]
    name = expr.name
    if name == "any":
        wanted = frozenset(a.value for a in expr.args if isinstance(a, ir.Const))
        return lambda env: not wanted.isdisjoint(obj(env).types)
    if name == "length":
        return lambda env: (
            len(v) if type(v := obj(env)) in SIZED_FAST or isinstance(v, str | list | tuple | Mapping) else 0
        )
    if name == "contains" and (expr.obj.type.kind == "list" or expr.obj.type == DYN):
        (arg,) = args  # a dynamic value may be a list or a string: look in either
        return lambda env: contains(arg(env), obj(env))
    if name in ir.FUNCTIONS:
        return _text_form(obj, _TEXT_FORMS[name])
    if name in ("startswith", "endswith") and is_const(expr.args[0]):
        return _const_affix(obj, name, const_value(expr.args[0]))
    return _string_method(obj, name, args)


# decoded(TEXT) and normalized(TEXT); a value that is not a string (a dynamic one) gives null
_TEXT_FORMS: dict[str, Callable[[str], str]] = {
    "decoded": textforms.decoded,
    "normalized": textforms.normalized,
}


def _text_form(obj: Fn, form: Callable[[str], str]) -> Fn:
    return lambda env: form(v) if isinstance(v := obj(env), str) else None


def is_const(expr: ir.Expr) -> bool:
    return isinstance(expr, ir.Const) or (
        isinstance(expr, ir.ListOf) and all(isinstance(i, ir.Const) for i in expr.items)
    )


def const_value(expr: ir.Expr) -> Any:
    if isinstance(expr, ir.ListOf):
        return tuple(i.value for i in expr.items if isinstance(i, ir.Const))
    return expr.value if isinstance(expr, ir.Const) else None


def _const_affix(obj: Fn, name: str, wanted: Any) -> Fn:
    """``.startswith`` / ``.endswith`` with a literal argument, checked once when linking."""
    if isinstance(wanted, list | tuple):
        wanted = tuple(w for w in wanted if isinstance(w, str))
    if not isinstance(wanted, str | tuple):
        return lambda env: (obj(env), False)[1]
    method = str.startswith if name == "startswith" else str.endswith
    return lambda env: isinstance(value := obj(env), str) and method(value, wanted)


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


def link_quant(expr: ir.Quant, regexes: dict[str, Any], body: Fn | None = None) -> Fn:
    """``any``/``all``; ``body`` is the body already linked (to a truth value), when the caller has it."""
    iterable, var = link(expr.iterable, regexes), expr.var
    body = body or _truth(expr.body, regexes)
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


# Rules as generated functions
#
# link() makes a closure per expression node, so a condition costs a Python call per node. On the
# hot path a rule's arms become one generated function instead. It writes out inline only what has
# one obvious meaning: boolean logic, equality and membership of statically typed strings, string
# methods on strings, and detector results. Request fields, dynamic values (tool arguments), indexing,
# regexes and ordering call the closures and helpers above, so their semantics live in one place:
# a fix there applies to both paths. The source holds only names made here; literals and closures
# reach it through the function's namespace, never spelled into the code.
