"""Name resolution and type checking: syntax-tree expressions in, typed IR expressions out."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import regex

from dsl import ast, ir
from dsl.diagnostics import Diagnostic, Span
from dsl.types import (
    ATTRIBUTES,
    BOOL,
    DYN,
    MEMBERS,
    NUMBER,
    RESULT,
    ROOT_FIELDS,
    STRING,
    STRINGS,
    Type,
    comparable,
    is_textual,
    list_of,
)

_STRING_METHODS: dict[str, tuple[tuple[str, ...], Type]] = {
    # name: (accepted argument kinds, result type); "text" = string or list<string>
    "lower": ((), STRING),
    "upper": ((), STRING),
    "trim": ((), STRING),
    "startswith": (("text",), BOOL),
    "endswith": (("text",), BOOL),
    "contains": (("string",), BOOL),
}
_ORDERING = frozenset({"<", "<=", ">", ">="})


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" hint, when some candidate is close enough."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


@dataclass(frozen=True, slots=True)
class DetectorInfo:
    """What the checker needs to know about a declared detector."""

    kind: str
    finding_types: frozenset[str]


class ExprChecker:
    """Checks expressions against the request schema and the declared detectors."""

    def __init__(
        self,
        detectors: Mapping[str, DetectorInfo],
        kinds: Iterable[str],
        broken: Iterable[str] = (),
    ) -> None:
        self.detectors = detectors
        self.broken = frozenset(broken)  # declared detectors with errors: their uses stay silent
        self.kinds = frozenset(kinds)
        self.diagnostics: list[Diagnostic] = []
        self.roots: dict[str, Span] = {}  # request fields read, for the stage check
        self._scopes: list[dict[str, Type]] = []

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, hint))

    def condition(self, expr: ast.Expr) -> ir.Expr | None:
        typed = self.check(expr)
        if typed is None or typed.type in (BOOL, DYN):
            return typed
        hint = "use .found, .count or .score of the result" if typed.type == RESULT else None
        self.error("P301", f"a condition must be a bool, not {typed.type}", expr.span, hint)
        return None

    def check(self, expr: ast.Expr) -> ir.Expr | None:
        """Type-check ``expr``; on an error, record a diagnostic and return None."""
        handler: Callable[[ast.Expr], ir.Expr | None] = getattr(self, "_" + type(expr).__name__.lower())
        return handler(expr)

    # leaves

    def _literal(self, expr: ast.Literal) -> ir.Expr:
        value = expr.value
        kind = BOOL if isinstance(value, bool) else STRING if isinstance(value, str) else NUMBER
        return ir.Const(value, kind)

    def _name(self, expr: ast.Name) -> ir.Expr | None:
        for scope in reversed(self._scopes):
            if expr.id in scope:
                return ir.Var(expr.id, scope[expr.id])
        if expr.id in ROOT_FIELDS:
            self.roots.setdefault(expr.id, expr.span)
            return ir.Field((expr.id,), ROOT_FIELDS[expr.id].type)
        if expr.id in self.detectors:
            hint = f"call it on the text to scan: {expr.id}(content)"
            self.error("P207", f"detector `{expr.id}` must be called", expr.span, hint)
            return None
        known = [*ROOT_FIELDS, *self.detectors, *(n for s in self._scopes for n in s)]
        self.error("P200", f"unknown name `{expr.id}`", expr.span, suggest(expr.id, known))
        return None

    def _listexpr(self, expr: ast.ListExpr) -> ir.Expr | None:
        items = [self.check(item) for item in expr.items]
        if any(item is None for item in items):
            return None
        typed = tuple(item for item in items if item is not None)
        kinds = {item.type for item in typed}
        if len(kinds) > 1:
            listed = ", ".join(sorted(str(k) for k in kinds))
            self.error("P300", f"list items must have one type, found {listed}", expr.span)
            return None
        return ir.ListOf(typed, list_of(kinds.pop() if kinds else DYN))

    # member access

    def _attr(self, expr: ast.Attr) -> ir.Expr | None:
        obj = self.check(expr.obj)
        if obj is None:
            return None
        if expr.name == "length" and (obj.type.kind == "list" or obj.type in (STRING, DYN)):
            return ir.Method(obj, "length", (), NUMBER)
        member = self._member_type(obj.type, expr.name)
        if member is None:
            members = MEMBERS.get(obj.type, {})
            hint = suggest(expr.name, members)
            if isinstance(obj, ir.Field):
                path = ".".join((*obj.path, expr.name))
                self.error("P201", f"the request has no field `{path}`", expr.name_span, hint)
            else:
                self.error("P203", f"{obj.type} has no attribute `{expr.name}`", expr.name_span, hint)
            return None
        if isinstance(obj, ir.Field):
            return ir.Field((*obj.path, expr.name), member)
        return ir.Member(obj, expr.name, member)

    @staticmethod
    def _member_type(owner: Type, name: str) -> Type | None:
        if owner == DYN:
            return DYN
        if owner == ATTRIBUTES:
            return STRING
        return MEMBERS.get(owner, {}).get(name)

    def _index(self, expr: ast.Index) -> ir.Expr | None:
        obj, index = self.check(expr.obj), self.check(expr.index)
        if obj is None or index is None:
            return None
        if obj.type.kind == "list" and obj.type.elem is not None and index.type in (NUMBER, DYN):
            return ir.Index(obj, index, obj.type.elem)
        if obj.type == DYN and index.type in (NUMBER, STRING, DYN):
            return ir.Index(obj, index, DYN)
        if obj.type == ATTRIBUTES and index.type in (STRING, DYN):
            return ir.Index(obj, index, STRING)
        self.error("P300", f"cannot index {obj.type} with {index.type}", expr.span)
        return None

    # calls

    def _call(self, expr: ast.Call) -> ir.Expr | None:
        if expr.func in self.broken:
            return None
        if expr.func in ir.FUNCTIONS and expr.func not in self.detectors:
            return self._function(expr)
        if expr.func not in self.detectors:
            if expr.func in self.kinds:
                hint = f"declare it first: detector my_{expr.func} = {expr.func}(...)"
                message = f"`{expr.func}` is a detector kind, not a declared detector"
            else:
                hint = suggest(expr.func, [*self.detectors, *ir.FUNCTIONS]) or ""
                message = f"unknown detector `{expr.func}`"
            self.error("P200", message, expr.func_span, hint or None)
            return None
        if len(expr.args) != 1:
            message = f"detector `{expr.func}` takes one argument, the text to scan"
            self.error("P207", message, expr.span, f"{expr.func}(content)")
            return None
        arg = self.check(expr.args[0])
        if arg is None:
            return None
        if not is_textual(arg.type):
            message = f"detector `{expr.func}` scans text, not {arg.type}"
            self.error("P302", message, expr.args[0].span)
            return None
        return ir.Detect(expr.func, arg)

    def _function(self, expr: ast.Call) -> ir.Expr | None:
        """``decoded(TEXT)`` and ``normalized(TEXT)``: a string in, a string out."""
        if len(expr.args) != 1:
            message = f"{expr.func}() takes one argument, the text"
            self.error("P207", message, expr.span, f"{expr.func}(content)")
            return None
        arg = self.check(expr.args[0])
        if arg is None:
            return None
        if arg.type not in (STRING, DYN):
            hint = "use content, which joins the messages" if arg.type.kind == "list" else None
            self.error("P302", f"{expr.func}() takes a string, not {arg.type}", expr.args[0].span, hint)
            return None
        return ir.Method(arg, expr.func, (), STRING)

    def _methodcall(self, expr: ast.MethodCall) -> ir.Expr | None:
        obj = self.check(expr.obj)
        if obj is None:
            return None
        if obj.type == RESULT and expr.name == "any" and isinstance(obj, ir.Detect):
            return self._result_any(obj, expr)
        if obj.type.kind == "list" and expr.name == "contains":
            return self._list_contains(obj, expr)
        if obj.type in (STRING, DYN) and expr.name in _STRING_METHODS:
            return self._string_method(obj, expr)
        known = ["any"] if obj.type == RESULT else list(_STRING_METHODS)
        message = f"{obj.type} has no method `{expr.name}`"
        self.error("P203", message, expr.name_span, suggest(expr.name, known))
        return None

    def _result_any(self, obj: ir.Detect, expr: ast.MethodCall) -> ir.Expr | None:
        if not expr.args:
            self.error("P207", "any() needs at least one finding type", expr.span)
            return None
        allowed = self.detectors[obj.decl].finding_types
        names: list[ir.Expr] = []
        for arg in expr.args:
            name = (
                arg.id if isinstance(arg, ast.Name) else arg.value if isinstance(arg, ast.Literal) else None
            )
            if not isinstance(name, str):
                self.error("P302", "any() takes finding type names", arg.span)
                return None
            if name not in allowed:
                message = f"detector `{obj.decl}` never reports `{name}`"
                hint = suggest(name, allowed) or f"it reports: {', '.join(sorted(allowed))}"
                self.error("P206", message, arg.span, hint)
                return None
            names.append(ir.Const(name, STRING))
        return ir.Method(obj, "any", tuple(names), BOOL)

    def _list_contains(self, obj: ir.Expr, expr: ast.MethodCall) -> ir.Expr | None:
        if len(expr.args) != 1:
            self.error("P207", "contains() takes one argument", expr.span)
            return None
        arg = self.check(expr.args[0])
        if arg is None:
            return None
        if obj.type.elem is not None and not comparable(obj.type.elem, arg.type):
            message = f"{obj.type} cannot contain {arg.type}"
            self.error("P300", message, expr.args[0].span)
            return None
        return ir.Method(obj, "contains", (arg,), BOOL)

    def _string_method(self, obj: ir.Expr, expr: ast.MethodCall) -> ir.Expr | None:
        kinds, result = _STRING_METHODS[expr.name]
        if len(expr.args) != len(kinds):
            message = f"{expr.name}() takes {len(kinds)} argument(s), got {len(expr.args)}"
            self.error("P207", message, expr.span)
            return None
        args = [self.check(arg) for arg in expr.args]
        typed: list[ir.Expr] = []
        for kind, arg, node in zip(kinds, args, expr.args, strict=True):
            if arg is None:
                return None
            accepted = (STRING, DYN, STRINGS) if kind == "text" else (STRING, DYN)
            if arg.type not in accepted:
                message = f"{expr.name}() expects a string, not {arg.type}"
                self.error("P302", message, node.span)
                return None
            typed.append(arg)
        return ir.Method(obj, expr.name, tuple(typed), result)

    # operators

    def _boolop(self, expr: ast.BoolOp) -> ir.Expr | None:
        left, right = self.condition(expr.left), self.condition(expr.right)
        if left is None or right is None:
            return None
        node = ir.And if expr.op == "and" else ir.Or
        items = [
            part for side in (left, right) for part in (side.items if isinstance(side, node) else (side,))
        ]
        return node(tuple(items))

    def _not(self, expr: ast.Not) -> ir.Expr | None:
        operand = self.condition(expr.operand)
        return None if operand is None else ir.Not(operand)

    def _compare(self, expr: ast.Compare) -> ir.Expr | None:
        left, right = self.check(expr.left), self.check(expr.right)
        if left is None or right is None:
            return None
        if RESULT in (left.type, right.type):
            hint = "compare .score, .count or .found of the result"
            self.error("P300", "a detector result cannot be compared", expr.span, hint)
            return None
        if expr.op in ("in", "not in"):
            return self._membership(expr, left, right)
        if expr.op in _ORDERING and not (left.type in (NUMBER, DYN) or left.type == STRING):
            self.error("P300", f"`{expr.op}` cannot order {left.type} values", expr.op_span)
            return None
        if not comparable(left.type, right.type):
            message = f"cannot compare {left.type} with {right.type}"
            self.error("P300", message, expr.op_span, _literal_hint(left, right))
            return None
        return ir.Cmp(expr.op, left, right)

    def _membership(self, expr: ast.Compare, left: ir.Expr, right: ir.Expr) -> ir.Expr | None:
        rtype = right.type
        ok = (
            rtype == DYN
            or (rtype.kind == "list" and rtype.elem is not None and comparable(left.type, rtype.elem))
            or (rtype in (STRING, ATTRIBUTES) and left.type in (STRING, DYN))
        )
        if not ok:
            message = f"`{expr.op}` cannot look for {left.type} in {rtype}"
            self.error("P300", message, expr.span)
            return None
        return ir.Cmp(expr.op, left, right)

    def _matches(self, expr: ast.Matches) -> ir.Expr | None:
        subject = self.check(expr.subject)
        if subject is None:
            return None
        if subject.type not in (STRING, DYN):
            self.error("P302", f"`matches` needs a string, not {subject.type}", expr.subject.span)
            return None
        try:
            regex.compile(expr.pattern)
        except regex.error as exc:
            self.error("P403", f"invalid regular expression: {exc}", expr.pattern_span)
            return None
        return ir.Match(subject, expr.pattern)

    def _quant(self, expr: ast.Quant) -> ir.Expr | None:
        iterable = self.check(expr.iterable)
        if iterable is None:
            return None
        if iterable.type.kind != "list" and iterable.type != DYN:
            message = f"{expr.kind}() iterates over a list, not {iterable.type}"
            self.error("P302", message, expr.iterable.span)
            return None
        elem = iterable.type.elem if iterable.type.elem is not None else DYN
        self._scopes.append({expr.var: elem})
        try:
            body = self.condition(expr.body)
        finally:
            self._scopes.pop()
        return None if body is None else ir.Quant(expr.kind, expr.var, iterable, body)


def _literal_hint(left: ir.Expr, right: ir.Expr) -> str | None:
    for node in (left, right):
        if isinstance(node, ir.Const) and node.type == NUMBER:
            return f'write the number as a string ("{node.value}") if a text comparison is meant'
    return None
