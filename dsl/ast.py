"""The syntax tree of a Palisade source file: typed nodes, each with its source span."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from dsl.diagnostics import Span


class ActionKind(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"
    FALLBACK = "fallback"
    ESCALATE = "escalate"


class FallbackKind(StrEnum):
    REPLY = "reply"
    MODEL = "model"
    REDACT = "redact"
    PSEUDONYMIZE = "pseudonymize"  # redact with a stable keyed pseudonym per value


@dataclass(frozen=True, slots=True)
class Ident:
    """A bare identifier used as a value (``type: US_SSN``, ``entities: [EMAIL_ADDRESS]``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Duration:
    """A duration literal such as ``25ms`` or ``15m``, kept in microseconds."""

    micros: int
    text: str


ParamValue = str | int | float | bool | Ident | Duration | list["ParamValue"]


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    span: Span
    reason: str | None = None
    fallback: FallbackKind | None = None
    fallback_value: str | None = None  # the canned reply or the fallback model name
    redact: tuple[tuple[str, Span], ...] = ()  # detector names whose findings are redacted
    queue: str | None = None
    within: Duration | None = None
    on_expiry: str = ""  # escalate: "allow" when an unanswered approval lets the request through
    reusable: bool = False  # escalate: an approval holds until its deadline, not for one use


# Expressions


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True, slots=True)
class Attr:
    obj: Expr
    name: str
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    span: Span
    func_span: Span


@dataclass(frozen=True, slots=True)
class MethodCall:
    obj: Expr
    name: str
    args: tuple[Expr, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Index:
    obj: Expr
    index: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != < <= > >= in "not in"
    left: Expr
    right: Expr
    span: Span
    op_span: Span


@dataclass(frozen=True, slots=True)
class Matches:
    subject: Expr
    pattern: str
    span: Span
    pattern_span: Span


@dataclass(frozen=True, slots=True)
class Quant:
    kind: str  # "any" | "all"
    var: str
    iterable: Expr
    body: Expr
    span: Span
    var_span: Span


Expr = Literal | Name | Attr | Call | MethodCall | Index | ListExpr | BoolOp | Not | Compare | Matches | Quant


# Declarations


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    value: ParamValue
    span: Span
    value_span: Span


@dataclass(frozen=True, slots=True)
class DetectorDecl:
    name: str
    kind: str
    params: tuple[Param, ...]
    span: Span
    name_span: Span
    kind_span: Span


@dataclass(frozen=True, slots=True)
class Arm:
    condition: Expr
    action: Action
    span: Span


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    stages: tuple[tuple[str, Span], ...]
    arms: tuple[Arm, ...]
    span: Span
    name_span: Span
    on_error: Action | None = None


@dataclass(frozen=True, slots=True)
class Setting:
    """A ruleset header line (owner, budget, default, on error, audit ...), kept with its span."""

    key: str
    value: str | int | float | Duration | Action
    span: Span
    detail: str = ""  # the percentile for ``budget``, the option for ``audit`` ("excerpts")
    detail_span: Span | None = None  # where ``detail`` is written, when the setting has one
    value_span: Span | None = None  # where a number value is written (``audit excerpts 200``)


@dataclass(frozen=True, slots=True)
class Import:
    path: str
    span: Span


@dataclass(slots=True)
class Body:
    """A ``ruleset`` or a ``library``: the declarations of one file."""

    kind: str  # "ruleset" | "library"
    name: str
    span: Span
    name_span: Span
    version: str = ""
    settings: list[Setting] = field(default_factory=list)
    detectors: list[DetectorDecl] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)


@dataclass(slots=True)
class Module:
    """One parsed source file."""

    file: str
    imports: list[Import]
    body: Body
