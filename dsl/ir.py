"""The decision graph: typed expressions, detector nodes, rule arms and actions, with a content hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dsl.diagnostics import Span
from dsl.types import BOOL, RESULT, Outcome, Stage, Type

# Expressions. Every node is immutable and hashable, so equal subtrees compare equal.


@dataclass(frozen=True, slots=True)
class Const:
    value: Any
    type: Type


@dataclass(frozen=True, slots=True)
class Field:
    """A request field, addressed by path: ("tool", "args", "path")."""

    path: tuple[str, ...]
    type: Type


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    type: Type


@dataclass(frozen=True, slots=True)
class Member:
    obj: Expr
    name: str
    type: Type


@dataclass(frozen=True, slots=True)
class Detect:
    """The result of a detector node; ``node`` is filled in when the graph is built."""

    decl: str
    input: Expr
    node: str = ""
    type: Type = RESULT


@dataclass(frozen=True, slots=True)
class Method:
    obj: Expr
    name: str
    args: tuple[Expr, ...]
    type: Type


@dataclass(frozen=True, slots=True)
class Index:
    obj: Expr
    index: Expr
    type: Type


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[Expr, ...]
    type: Type


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Cmp:
    op: str
    left: Expr
    right: Expr
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Match:
    subject: Expr
    pattern: str
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Quant:
    kind: str
    var: str
    iterable: Expr
    body: Expr
    type: Type = BOOL


Expr = Const | Field | Var | Member | Detect | Method | Index | ListOf | And | Or | Not | Cmp | Match | Quant

# Built-in functions of one string, `decoded(content)`: kept as a Method of their argument.
FUNCTIONS = frozenset({"decoded", "normalized"})


def render(expr: Expr) -> str:
    """A compact, canonical text form of an expression (used in node ids and graph dumps)."""
    match expr:
        case Const(value=value):
            return json.dumps(value)
        case Field(path=path):
            return ".".join(path)
        case Var(name=name):
            return name
        case Member(obj=obj, name=name):
            return f"{render(obj)}.{name}"
        case Detect(decl=decl, input=inp, node=node):
            return node or f"{decl}({render(inp)})"
        case Method(obj=obj, name=name, args=()) if name in FUNCTIONS:
            return f"{name}({render(obj)})"
        case Method(obj=obj, name=name, args=args):
            return f"{render(obj)}.{name}({', '.join(render(a) for a in args)})"
        case Index(obj=obj, index=index):
            return f"{render(obj)}[{render(index)}]"
        case ListOf(items=items):
            return f"[{', '.join(render(i) for i in items)}]"
        case And(items=items) | Or(items=items):
            word = " and " if isinstance(expr, And) else " or "
            return "(" + word.join(render(i) for i in items) + ")"
        case Not(operand=operand):
            return f"not {render(operand)}"
        case Cmp(op=op, left=left, right=right):
            return f"{render(left)} {op} {render(right)}"
        case Match(subject=subject, pattern=pattern):
            return f"{render(subject)} matches {json.dumps(pattern)}"
        case Quant(kind=kind, var=var, iterable=iterable, body=body):
            return f"{kind}({var} in {render(iterable)}: {render(body)})"
    raise TypeError(f"not an IR expression: {expr!r}")


def children(expr: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of a node."""
    match expr:
        case Member(obj=obj) | Method(obj=obj, args=()):
            return (obj,)
        case Method(obj=obj, args=args):
            return (obj, *args)
        case Detect(input=inp):
            return (inp,)
        case Index(obj=obj, index=index):
            return (obj, index)
        case ListOf(items=items) | And(items=items) | Or(items=items):
            return items
        case Not(operand=operand):
            return (operand,)
        case Cmp(left=left, right=right):
            return (left, right)
        case Match(subject=subject):
            return (subject,)
        case Quant(iterable=iterable, body=body):
            return (iterable, body)
    return ()


def walk(expr: Expr) -> list[Expr]:
    """Every node of an expression, the root first."""
    nodes, stack = [], [expr]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(reversed(children(node)))
    return nodes


def detectors_in(expr: Expr) -> frozenset[str]:
    return frozenset(n.node for n in walk(expr) if isinstance(n, Detect))


# The graph


@dataclass(frozen=True, slots=True)
class ActionNode:
    outcome: Outcome
    reason: str = ""
    fallback: str = ""  # "reply" | "model" | "redact"
    fallback_value: str = ""
    redact: tuple[str, ...] = ()  # detector node ids whose findings on `content` are redacted
    queue: str = ""
    within_us: int = 0
    span: Span | None = field(default=None, compare=False)
    pseudonymize: bool = False  # `fallback pseudonymize`: keyed pseudonyms instead of <TYPE>
    on_expiry: str = ""  # escalate: "allow" (`else allow`) or "" (an expired approval blocks)
    reusable: bool = False  # escalate: an approval holds until its deadline (`reusable`)

    def canonical(self) -> dict[str, Any]:
        data = {
            "outcome": self.outcome.label,
            "reason": self.reason,
            "fallback": self.fallback,
            "fallback_value": self.fallback_value,
            "redact": list(self.redact),
            "queue": self.queue,
            "within_us": self.within_us,
            "pseudonymize": self.pseudonymize,
            "on_expiry": self.on_expiry,
            "reusable": self.reusable,
        }
        return {k: v for k, v in data.items() if v not in ("", [], 0) or k == "outcome"}


@dataclass(frozen=True, slots=True)
class DetectorNode:
    """One detector invocation: kind + parameters + input. Shared by every rule that uses it."""

    id: str
    kind: str
    params: dict[str, Any] = field(hash=False)
    input: Expr
    cost_class: int
    cost_us: int
    decls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ArmNode:
    index: int
    condition: Expr
    action: ActionNode
    detectors: frozenset[str]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class RuleNode:
    name: str
    stages: frozenset[Stage]
    arms: tuple[ArmNode, ...]
    on_error: ActionNode
    cost_us: int
    span: Span | None = field(default=None, compare=False)

    @property
    def max_outcome(self) -> Outcome:
        outcomes = [arm.action.outcome for arm in self.arms] + [self.on_error.outcome]
        return max(outcomes)


@dataclass(frozen=True, slots=True)
class Graph:
    """A compiled ruleset: what the evaluator runs, identified by ``content_hash``."""

    name: str
    version: str
    owner: str
    budget_p95_us: int
    default: ActionNode
    on_error: ActionNode
    detectors: dict[str, DetectorNode] = field(hash=False)
    rules: tuple[RuleNode, ...]
    files: tuple[str, ...] = field(compare=False)
    content_hash: str = ""
    # `audit excerpts N`: characters per message kept, masked, in each audit record (0: no excerpt),
    # and the estimated cost of masking them (the pii and secrets scans)
    audit_excerpts: int = 0
    audit_cost_us: int = 0

    @property
    def estimated_cost_us(self) -> int:
        return (
            sum(node.cost_us for node in self.detectors.values())
            + sum(rule.cost_us for rule in self.rules)
            + self.audit_cost_us
        )

    def canonical(self) -> dict[str, Any]:
        """The semantic content of the graph, without spans or file names."""
        # audit_excerpts only when set, so graphs without it keep the hashes they always had
        audit = {"audit_excerpts": self.audit_excerpts} if self.audit_excerpts else {}
        return audit | {
            "name": self.name,
            "version": self.version,
            "owner": self.owner,
            "budget_p95_us": self.budget_p95_us,
            "default": self.default.canonical(),
            "on_error": self.on_error.canonical(),
            "detectors": {
                node_id: {"kind": node.kind, "params": node.params, "input": render(node.input)}
                for node_id, node in sorted(self.detectors.items())
            },
            "rules": [
                {
                    "name": rule.name,
                    "stages": sorted(rule.stages),
                    "on_error": rule.on_error.canonical(),
                    "arms": [
                        {"when": render(arm.condition), "then": arm.action.canonical()} for arm in rule.arms
                    ],
                }
                for rule in self.rules
            ],
        }

    def compute_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def map_children(expr: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """A copy of ``expr`` with ``fn`` applied to each direct sub-expression."""
    match expr:
        case Member(obj=obj):
            return replace(expr, obj=fn(obj))
        case Detect(input=inp):
            return replace(expr, input=fn(inp))
        case Method(obj=obj, args=args):
            return replace(expr, obj=fn(obj), args=tuple(fn(a) for a in args))
        case Index(obj=obj, index=index):
            return replace(expr, obj=fn(obj), index=fn(index))
        case ListOf(items=items) | And(items=items) | Or(items=items):
            return replace(expr, items=tuple(fn(i) for i in items))
        case Not(operand=operand):
            return replace(expr, operand=fn(operand))
        case Cmp(left=left, right=right):
            return replace(expr, left=fn(left), right=fn(right))
        case Match(subject=subject):
            return replace(expr, subject=fn(subject))
        case Quant(iterable=iterable, body=body):
            return replace(expr, iterable=fn(iterable), body=fn(body))
    return expr
