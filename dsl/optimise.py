"""The optimise stage: fold constants, order conjunctions by cost, find dead arms, check the budget, hash."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import regex

from dsl import ir
from dsl.compile_state import Compilation
from dsl.types import BOOL

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
TRUE, FALSE = ir.Const(True, BOOL), ir.Const(False, BOOL)


def optimise_stage(c: Compilation) -> None:
    assert c.graph is not None
    costs = {node_id: node.cost_class for node_id, node in c.graph.detectors.items()}
    rules = tuple(_optimise_rule(c, rule, costs) for rule in c.graph.rules)
    graph = replace(c.graph, rules=rules)
    _check_budget(c, graph)
    c.graph = replace(graph, content_hash=graph.compute_hash())


def _optimise_rule(c: Compilation, rule: ir.RuleNode, costs: Mapping[str, int]) -> ir.RuleNode:
    arms: list[ir.ArmNode] = []
    seen: dict[ir.Expr, ir.ArmNode] = {}
    always: ir.ArmNode | None = None
    for arm in rule.arms:
        condition = order_by_cost(fold(arm.condition), costs)
        span = arm.span or rule.span
        assert span is not None
        if always is not None:
            c.error("P501", f"this arm of `{rule.name}` is never reached", span, _after(always))
        elif condition == FALSE:
            c.error("P500", f"this arm of `{rule.name}` can never match", span)
        elif condition in seen:
            message = f"this arm of `{rule.name}` repeats an earlier condition"
            c.error("P501", message, span, _after(seen[condition]))
        seen.setdefault(condition, arm)
        if condition == TRUE and always is None:
            always = arm
        arms.append(replace(arm, condition=condition))
    return replace(rule, arms=tuple(arms))


def _after(arm: ir.ArmNode) -> str:
    where = f" at {arm.span}" if arm.span else ""
    return f"the arm{where} always matches first"


def fold(expr: ir.Expr) -> ir.Expr:
    """Evaluate whatever does not depend on the request."""
    expr = ir.map_children(expr, fold)
    match expr:
        case ir.Not(operand=ir.Const(value=bool() as value)):
            return ir.Const(not value, BOOL)
        case ir.And(items=items):
            return _fold_junction(items, ir.And, absorbing=False)
        case ir.Or(items=items):
            return _fold_junction(items, ir.Or, absorbing=True)
        case ir.Cmp(op=op, left=ir.Const(value=left), right=ir.Const(value=right)):
            return ir.Const(_constant_compare(op, left, right), BOOL)
        case ir.Cmp(op=op, left=ir.Const(value=left), right=ir.ListOf(items=items)) if all(
            isinstance(item, ir.Const) for item in items
        ):
            values = [item.value for item in items if isinstance(item, ir.Const)]
            return ir.Const((left in values) == (op == "in"), BOOL)
        case ir.Match(subject=ir.Const(value=str() as text), pattern=pattern):
            try:
                return ir.Const(regex.search(pattern, text, timeout=1.0) is not None, BOOL)
            except TimeoutError:  # too slow to fold: left to the evaluator and its match timeout
                return expr
    return expr


def _constant_compare(op: str, left: Any, right: Any) -> bool:
    if op in ("in", "not in"):
        return (left in right) == (op == "in")
    return _COMPARE[op](left, right)


def _fold_junction(
    items: tuple[ir.Expr, ...], node: type[ir.And] | type[ir.Or], *, absorbing: bool
) -> ir.Expr:
    if ir.Const(absorbing, BOOL) in items:
        return ir.Const(absorbing, BOOL)
    kept = tuple(item for item in items if item != ir.Const(not absorbing, BOOL))
    if not kept:
        return ir.Const(not absorbing, BOOL)
    return kept[0] if len(kept) == 1 else node(kept)


def order_by_cost(expr: ir.Expr, costs: Mapping[str, int]) -> ir.Expr:
    """Put the cheap operands of and/or first, so short-circuiting skips the expensive ones."""
    expr = ir.map_children(expr, lambda child: order_by_cost(child, costs))
    if isinstance(expr, ir.And | ir.Or):
        return replace(expr, items=tuple(sorted(expr.items, key=lambda e: _cost_key(e, costs))))
    return expr


def _cost_key(expr: ir.Expr, costs: Mapping[str, int]) -> tuple[int, int]:
    nodes = ir.walk(expr)
    heaviest = max((costs.get(n.node, 0) for n in nodes if isinstance(n, ir.Detect)), default=0)
    return heaviest, len(nodes) + 25 * sum(isinstance(n, ir.Match) for n in nodes)


def _check_budget(c: Compilation, graph: ir.Graph) -> None:
    budget = c.setting("budget")
    if budget is None or not graph.budget_p95_us:
        return
    estimate = graph.estimated_cost_us
    if estimate > graph.budget_p95_us:
        heavy = sorted(graph.detectors.values(), key=lambda n: -n.cost_us)[:3]
        listed = ", ".join(f"{n.id} ~{n.cost_us}us" for n in heavy)
        if graph.audit_cost_us:
            listed += f"; masking the audit excerpts ~{graph.audit_cost_us}us"
        message = (
            f"the estimated cost of one Check is {estimate}us, over the p95 budget of {graph.budget_p95_us}us"
        )
        c.error("P700", message, budget.span, f"the most expensive detectors: {listed}")
