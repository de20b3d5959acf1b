"""Source text to syntax tree: the Lark LALR parser, syntax diagnostics, and the tree builder."""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import PatternStr
from lark.tree import Meta, Tree

from dsl import ast
from dsl.diagnostics import Diagnostic, Span

MAX_SOURCE_BYTES = 1 << 20
MAX_NESTING = 64
# Levels of the syntax tree. Brackets are not the only nesting: `not not ...`, `a or b or ...` and
# `x.lower().trim()...` nest too, and every later stage walks the tree recursively (the shipped
# rulesets reach 12 levels). A literal number or duration must fit a double, a duration 2**53 us.
MAX_DEPTH = 200
MAX_DURATION_US = 2**53
_UNITS_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "SIGNED_NUMBER": "a number",
    "DURATION": "a duration (like 25ms)",
    "CMP_OP": "a comparison",
    "QUANT": "any(... in ...: ...)",
    "EXPIRY": "else allow | else block",
    "$END": "the end of the file",
}


class SyntaxProblem(Exception):
    """Raised inside the tree builder for a literal that parses but is not valid."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@cache
def _lark() -> Lark:
    grammar = resources.files("dsl").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


@cache
def _terminal_words() -> dict[str, str]:
    words = dict(_TERMINAL_WORDS)
    for terminal in _lark().terminals:
        if isinstance(terminal.pattern, PatternStr):
            words.setdefault(terminal.name, f"'{terminal.pattern.value}'")
    return words


def parse_duration(text: str) -> int:
    """``25ms`` -> 25000 microseconds."""
    number = text.rstrip("usmh")
    return int(float(number) * _UNITS_US[text[len(number) :]])


def decode_string(token: str) -> str:
    r"""Strip quotes; ``\"``, ``\\``, ``\n``, ``\t`` are escapes, any other backslash stays as written."""
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body) and body[i + 1] in _ESCAPES:
            out.append(_ESCAPES[body[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _nesting_depth(text: str) -> tuple[int, int]:
    """Deepest bracket nesting outside strings and comments, and the offset where it was reached."""
    depth = deepest = where = 0
    in_string = in_comment = escaped = False
    for offset, ch in enumerate(text):
        if in_comment:
            in_comment = ch != "\n"
        elif in_string:
            in_string = escaped or ch != '"'
            escaped = not escaped and ch == "\\"
        elif ch in "([{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, offset
        elif ch in ")]}":
            depth -= 1
        else:
            in_string, in_comment = ch == '"', ch == "#"
    return deepest, where


def _tree_depth(tree: Tree[Token]) -> tuple[int, Tree[Token]]:
    """The depth of the syntax tree and its deepest subtree, found without recursion."""
    deepest, where = 0, tree
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest, where = depth, node
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return deepest, where


def _depth_problem(file: str, tree: Tree[Token]) -> Diagnostic | None:
    depth, where = _tree_depth(tree)
    if depth <= MAX_DEPTH:
        return None
    meta = where.meta
    span = (
        Span(file, 1, 1, 1, 2)
        if meta.empty
        else Span(file, meta.line, meta.column, meta.line, meta.column + 1)
    )
    message = f"the syntax tree is {depth} levels deep; the limit is {MAX_DEPTH}"
    hint = "every `not`, `and`, `or`, `.` and bracket adds a level: split the condition across arms or rules"
    return Diagnostic("P102", message, span, hint)


def _offset_span(file: str, text: str, offset: int) -> Span:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Span(file, line, column, line, column + 1)


def _expected_words(expected: set[str]) -> str:
    words = _terminal_words()
    named = sorted({words.get(name, name) for name in expected})
    return ", ".join(named[:12]) + (" ..." if len(named) > 12 else "")


def _syntax_diagnostic(file: str, text: str, error: UnexpectedInput) -> Diagnostic:
    line, column = max(error.line, 1), max(error.column, 1)
    if isinstance(error, UnexpectedCharacters):
        pos = error.pos_in_stream or 0
        char = text[pos] if pos < len(text) else ""
        span = Span(file, line, column, line, column + 1)
        hint = "strings use double quotes" if char == "'" else None
        return Diagnostic("P101", f"unexpected character {char!r}", span, hint)
    if isinstance(error, UnexpectedToken):
        token = error.token
        found = "the end of the file" if token.type == "$END" else f"'{token}'"
        width = max(len(str(token)), 1) if token.type != "$END" else 1
        span = Span(file, line, column, line, column + width)
        message = f"unexpected {found}; expected {_expected_words(set(error.expected))}"
        return Diagnostic("P100", message, span)
    return Diagnostic("P100", str(error).splitlines()[0], Span(file, line, column, line, column + 1))


def parse(file: str, text: str) -> tuple[ast.Module | None, list[Diagnostic]]:
    """Parse one file. Returns the module, or None with the diagnostics that explain why not."""
    if len(text.encode("utf-8")) > MAX_SOURCE_BYTES:
        span = Span(file, 1, 1, 1, 2)
        return None, [Diagnostic("P102", f"source is larger than {MAX_SOURCE_BYTES} bytes", span)]
    depth, where = _nesting_depth(text)
    if depth > MAX_NESTING:
        span = _offset_span(file, text, where)
        message = f"brackets nest {depth} deep; the limit is {MAX_NESTING}"
        return None, [Diagnostic("P102", message, span, "split the expression into rules")]
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as error:
        return None, [_syntax_diagnostic(file, text, error)]
    too_deep = _depth_problem(file, tree)
    if too_deep is not None:
        return None, [too_deep]
    try:
        module: ast.Module = _Builder(file).transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, SyntaxProblem):
            return None, [error.orig_exc.diagnostic]
        raise
    return module, []


def _present(items: list[Any]) -> list[Any]:
    return [item for item in items if item is not None]


@v_args(meta=True)
class _Builder(Transformer[Token, ast.Module]):
    """Builds dsl.ast nodes from the Lark tree, one method per grammar rule."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def _span(self, meta: Meta) -> Span:
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok(self, token: Token) -> Span:
        line, column = token.line or 1, token.column or 1
        return Span(self.file, line, column, token.end_line or line, token.end_column or column + 1)

    def _duration(self, token: Token) -> ast.Duration:
        text = str(token)
        number = text.rstrip("usmh")
        if float(number) * _UNITS_US[text[len(number) :]] > MAX_DURATION_US:
            years = round(MAX_DURATION_US / (_UNITS_US["h"] * 24 * 365.25))
            raise SyntaxProblem(
                Diagnostic("P103", f"a duration must be at most {years} years", self._tok(token))
            )
        micros = parse_duration(text)
        if micros <= 0:
            raise SyntaxProblem(Diagnostic("P103", "a duration must be positive", self._tok(token)))
        return ast.Duration(micros, text)

    def _number(self, token: Token) -> int | float:
        text = str(token)
        if not math.isfinite(float(text)):
            message = f"a number of {len(text)} characters is out of range (numbers are doubles)"
            raise SyntaxProblem(Diagnostic("P103", message, self._tok(token)))
        return float(text) if "." in text else int(text)

    # file structure

    def start(self, meta: Meta, children: list[Any]) -> ast.Module:
        return ast.Module(self.file, list(children[:-1]), children[-1])

    def import_stmt(self, meta: Meta, children: list[Token]) -> ast.Import:
        return ast.Import(decode_string(children[0]), self._span(meta))

    def _body(self, kind: str, meta: Meta, name: Token, version: str, items: list[Any]) -> ast.Body:
        body = ast.Body(kind, str(name), self._span(meta), self._tok(name), version)
        for item in items:
            if isinstance(item, ast.Setting):
                body.settings.append(item)
            elif isinstance(item, ast.DetectorDecl):
                body.detectors.append(item)
            else:
                body.rules.append(item)
        return body

    def ruleset(self, meta: Meta, children: list[Any]) -> ast.Body:
        return self._body("ruleset", meta, children[0], decode_string(children[1]), children[2:])

    def library(self, meta: Meta, children: list[Any]) -> ast.Body:
        return self._body("library", meta, children[0], "", children[1:])

    def owner(self, meta: Meta, children: list[Token]) -> ast.Setting:
        return ast.Setting("owner", decode_string(children[0]), self._span(meta))

    def budget(self, meta: Meta, children: list[Token]) -> ast.Setting:
        percentile, duration = children
        return ast.Setting("budget", self._duration(duration), self._span(meta), str(percentile))

    def audit(self, meta: Meta, children: list[Token]) -> ast.Setting:
        option, number = children
        return ast.Setting(
            f"audit {option}",
            self._number(number),
            self._span(meta),
            str(option),
            detail_span=self._tok(option),
            value_span=self._tok(number),
        )

    def default(self, meta: Meta, children: list[ast.Action]) -> ast.Setting:
        return ast.Setting("default", children[0], self._span(meta))

    def on_error(self, meta: Meta, children: list[ast.Action]) -> ast.Setting:
        return ast.Setting("on error", children[0], self._span(meta))

    # detectors

    def detector_decl(self, meta: Meta, children: list[Any]) -> ast.DetectorDecl:
        name, kind, *params = children
        span = self._span(meta)
        return ast.DetectorDecl(
            str(name), str(kind), tuple(_present(params)), span, self._tok(name), self._tok(kind)
        )

    def param(self, meta: Meta, children: list[Any]) -> ast.Param:
        name, (value, value_span) = children
        return ast.Param(str(name), value, self._span(meta), value_span)

    def v_string(self, meta: Meta, children: list[Token]) -> tuple[ast.ParamValue, Span]:
        return decode_string(children[0]), self._span(meta)

    def v_number(self, meta: Meta, children: list[Token]) -> tuple[ast.ParamValue, Span]:
        return self._number(children[0]), self._span(meta)

    def v_duration(self, meta: Meta, children: list[Token]) -> tuple[ast.ParamValue, Span]:
        return self._duration(children[0]), self._span(meta)

    def v_true(self, meta: Meta, children: list[Token]) -> tuple[ast.ParamValue, Span]:
        return True, self._span(meta)

    def v_false(self, meta: Meta, children: list[Token]) -> tuple[ast.ParamValue, Span]:
        return False, self._span(meta)

    def v_name(self, meta: Meta, children: list[Token]) -> tuple[ast.ParamValue, Span]:
        return ast.Ident(str(children[0])), self._span(meta)

    def v_list(self, meta: Meta, children: list[Any]) -> tuple[ast.ParamValue, Span]:
        return [value for value, _ in _present(children)], self._span(meta)

    # rules and actions

    def rule(self, meta: Meta, children: list[Any]) -> ast.Rule:
        name, stages, on_error, *arms = children
        action = on_error.value if on_error is not None else None
        span = self._span(meta)
        return ast.Rule(str(name), stages, tuple(arms), span, self._tok(name), action)

    def stages(self, meta: Meta, children: list[Token]) -> tuple[tuple[str, Span], ...]:
        return tuple((str(tok), self._tok(tok)) for tok in children)

    def arm(self, meta: Meta, children: list[Any]) -> ast.Arm:
        return ast.Arm(children[0], children[1], self._span(meta))

    def _reason(self, token: Token | None) -> str | None:
        return decode_string(token) if token is not None else None

    def allow(self, meta: Meta, children: list[Token | None]) -> ast.Action:
        return ast.Action(ast.ActionKind.ALLOW, self._span(meta), self._reason(children[0]))

    def block(self, meta: Meta, children: list[Token | None]) -> ast.Action:
        return ast.Action(ast.ActionKind.BLOCK, self._span(meta), self._reason(children[0]))

    def _fallback(self, meta: Meta, kind: ast.FallbackKind, children: list[Token]) -> ast.Action:
        value, reason = children
        return ast.Action(
            ast.ActionKind.FALLBACK,
            self._span(meta),
            self._reason(reason),
            fallback=kind,
            fallback_value=decode_string(value),
        )

    def fallback_reply(self, meta: Meta, children: list[Token]) -> ast.Action:
        return self._fallback(meta, ast.FallbackKind.REPLY, children)

    def fallback_model(self, meta: Meta, children: list[Token]) -> ast.Action:
        return self._fallback(meta, ast.FallbackKind.MODEL, children)

    def fallback_redact(self, meta: Meta, children: list[Token | None]) -> ast.Action:
        return self._redaction(meta, ast.FallbackKind.REDACT, children)

    def fallback_pseudonymize(self, meta: Meta, children: list[Token | None]) -> ast.Action:
        return self._redaction(meta, ast.FallbackKind.PSEUDONYMIZE, children)

    def _redaction(self, meta: Meta, kind: ast.FallbackKind, children: list[Token | None]) -> ast.Action:
        *names, reason = children
        redact = tuple((str(tok), self._tok(tok)) for tok in _present(names))
        return ast.Action(
            ast.ActionKind.FALLBACK,
            self._span(meta),
            self._reason(reason),
            fallback=kind,
            redact=redact,
        )

    def escalate(self, meta: Meta, children: list[Token | None]) -> ast.Action:
        queue, within, expiry, reusable, reason = children
        assert queue is not None and within is not None
        return ast.Action(
            ast.ActionKind.ESCALATE,
            self._span(meta),
            self._reason(reason),
            queue=decode_string(queue),
            within=self._duration(within),
            on_expiry="allow" if expiry is not None and str(expiry).endswith("allow") else "",
            reusable=reusable is not None,
        )

    # expressions

    def or_(self, meta: Meta, children: list[ast.Expr]) -> ast.Expr:
        return ast.BoolOp("or", children[0], children[1], self._span(meta))

    def and_(self, meta: Meta, children: list[ast.Expr]) -> ast.Expr:
        return ast.BoolOp("and", children[0], children[1], self._span(meta))

    def not_(self, meta: Meta, children: list[ast.Expr]) -> ast.Expr:
        return ast.Not(children[0], self._span(meta))

    def compare(self, meta: Meta, children: list[Any]) -> ast.Expr:
        left, op, right = children
        return ast.Compare(str(op), left, right, self._span(meta), self._tok(op))

    def _membership(self, meta: Meta, op: str, children: list[ast.Expr]) -> ast.Expr:
        left, right = children
        span = self._span(meta)
        return ast.Compare(op, left, right, span, span)

    def in_(self, meta: Meta, children: list[ast.Expr]) -> ast.Expr:
        return self._membership(meta, "in", children)

    def not_in(self, meta: Meta, children: list[ast.Expr]) -> ast.Expr:
        return self._membership(meta, "not in", children)

    def matches(self, meta: Meta, children: list[Any]) -> ast.Expr:
        subject, pattern = children
        span = self._span(meta)
        return ast.Matches(subject, decode_string(pattern), span, self._tok(pattern))

    def attr(self, meta: Meta, children: list[Any]) -> ast.Expr:
        obj, name = children
        return ast.Attr(obj, str(name), self._span(meta), self._tok(name))

    def method(self, meta: Meta, children: list[Any]) -> ast.Expr:
        obj, name, *args = children
        span = self._span(meta)
        return ast.MethodCall(obj, str(name), tuple(_present(args)), span, self._tok(name))

    def index(self, meta: Meta, children: list[ast.Expr]) -> ast.Expr:
        return ast.Index(children[0], children[1], self._span(meta))

    def string(self, meta: Meta, children: list[Token]) -> ast.Expr:
        return ast.Literal(decode_string(children[0]), self._span(meta))

    def number(self, meta: Meta, children: list[Token]) -> ast.Expr:
        return ast.Literal(self._number(children[0]), self._span(meta))

    def true(self, meta: Meta, children: list[Token]) -> ast.Expr:
        return ast.Literal(True, self._span(meta))

    def false(self, meta: Meta, children: list[Token]) -> ast.Expr:
        return ast.Literal(False, self._span(meta))

    def name(self, meta: Meta, children: list[Token]) -> ast.Expr:
        return ast.Name(str(children[0]), self._span(meta))

    def call(self, meta: Meta, children: list[Any]) -> ast.Expr:
        func, *args = children
        return ast.Call(str(func), tuple(_present(args)), self._span(meta), self._tok(func))

    def list_expr(self, meta: Meta, children: list[Any]) -> ast.Expr:
        return ast.ListExpr(tuple(_present(children)), self._span(meta))

    def quant(self, meta: Meta, children: list[Any]) -> ast.Expr:
        kind, var, iterable, body = children
        span = self._span(meta)
        return ast.Quant(str(kind), str(var), iterable, body, span, self._tok(var))
