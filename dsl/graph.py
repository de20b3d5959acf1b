"""The build_graph stage: typed rules to a decision graph with one node per distinct detector call."""

from __future__ import annotations

import json
from dataclasses import replace

from detectors.specs import SPECS
from dsl import ast, ir
from dsl.compile_state import Compilation, TypedRule
from dsl.types import STRING, Outcome, Stage

_OUTCOMES = {
    ast.ActionKind.ALLOW: Outcome.ALLOW,
    ast.ActionKind.BLOCK: Outcome.BLOCK,
    ast.ActionKind.FALLBACK: Outcome.FALLBACK,
    ast.ActionKind.ESCALATE: Outcome.ESCALATE,
}
DEFAULT_ON_ERROR = ir.ActionNode(Outcome.BLOCK, "a detector failed (fail closed)")
DEFAULT_OUTCOME = ir.ActionNode(Outcome.ALLOW)
CONTENT = ir.Field(("content",), STRING)
# Masking audit excerpts scans each Check's content with the pii and secrets detectors
EXCERPT_MASKING_COST_US = SPECS["pii"].cost_us + SPECS["secrets"].cost_us


def build_graph_stage(c: Compilation) -> None:
    assert c.body is not None
    builder = _GraphBuilder(c)
    rules = tuple(builder.rule(typed) for typed in c.typed_rules)
    default, on_error, owner = c.setting("default"), c.setting("on error"), c.setting("owner")
    budget, excerpts = c.setting("budget"), c.setting("audit excerpts")
    excerpt_chars = excerpts.value if excerpts and isinstance(excerpts.value, int) else 0
    c.graph = ir.Graph(
        name=c.body.name,
        version=c.body.version,
        owner=owner.value if owner and isinstance(owner.value, str) else "",
        budget_p95_us=budget.value.micros if budget and isinstance(budget.value, ast.Duration) else 0,
        default=builder.setting_action(default, DEFAULT_OUTCOME),
        on_error=builder.setting_action(on_error, DEFAULT_ON_ERROR),
        detectors=builder.nodes(),
        rules=rules,
        files=tuple(c.sources),
        audit_excerpts=excerpt_chars,
        audit_cost_us=EXCERPT_MASKING_COST_US if excerpt_chars else 0,
    )


class _GraphBuilder:
    def __init__(self, c: Compilation) -> None:
        self.c = c
        self._ids: dict[tuple[str, str, str], str] = {}
        self._nodes: dict[str, ir.DetectorNode] = {}
        self._decls: dict[str, list[str]] = {}

    def nodes(self) -> dict[str, ir.DetectorNode]:
        return {
            node_id: replace(node, decls=tuple(self._decls[node_id])) for node_id, node in self._nodes.items()
        }

    def node_for(self, decl: str, inp: ir.Expr) -> str:
        resolved = self.c.detectors[decl]
        params = resolved.params.model_dump(mode="json")
        key = (resolved.spec.name, json.dumps(params, sort_keys=True), ir.render(inp))
        node_id = self._ids.get(key)
        if node_id is None:
            node_id = self._ids[key] = f"{decl}({ir.render(inp)})"
            self._nodes[node_id] = ir.DetectorNode(
                node_id, resolved.spec.name, params, inp, resolved.spec.cost, resolved.spec.cost_us
            )
            self._decls[node_id] = []
        if decl not in self._decls[node_id]:
            self._decls[node_id].append(decl)
        return node_id

    def bind(self, expr: ir.Expr) -> ir.Expr:
        expr = ir.map_children(expr, self.bind)
        if isinstance(expr, ir.Detect):
            return replace(expr, node=self.node_for(expr.decl, expr.input))
        return expr

    def rule(self, typed: TypedRule) -> ir.RuleNode:
        rule = typed.rule
        arms = []
        for index, (arm, condition) in enumerate(zip(rule.arms, typed.conditions, strict=True)):
            bound = self.bind(condition)
            action = self.action(arm.action, bound)
            uses = ir.detectors_in(bound) | frozenset(action.redact)
            arms.append(ir.ArmNode(index, bound, action, uses, arm.span))
        on_error = self.c.setting("on error")
        rule_error = rule.on_error
        default_error = self.setting_action(on_error, DEFAULT_ON_ERROR)
        return ir.RuleNode(
            name=rule.name,
            stages=frozenset(Stage(name) for name, _ in rule.stages),
            arms=tuple(arms),
            on_error=self.action(rule_error, None) if rule_error else default_error,
            cost_us=sum(_expr_cost_us(arm.condition) for arm in arms),
            span=rule.span,
        )

    def setting_action(self, setting: ast.Setting | None, fallback: ir.ActionNode) -> ir.ActionNode:
        if setting is None or not isinstance(setting.value, ast.Action):
            return fallback
        return self.action(setting.value, None)

    def action(self, action: ast.Action, condition: ir.Expr | None) -> ir.ActionNode:
        redact: tuple[str, ...] = ()
        pseudonymize = action.fallback is ast.FallbackKind.PSEUDONYMIZE
        if action.fallback is ast.FallbackKind.REDACT or pseudonymize:
            redact = self._redact_nodes(action, condition)
        return ir.ActionNode(
            outcome=_OUTCOMES[action.kind],
            reason=action.reason or "",
            # a pseudonymizing redaction is a redaction to callers; only the placeholders differ
            fallback="redact" if pseudonymize else action.fallback.value if action.fallback else "",
            fallback_value=action.fallback_value or "",
            redact=redact,
            queue=action.queue or "",
            within_us=action.within.micros if action.within else 0,
            on_expiry=action.on_expiry,
            reusable=action.reusable,
            pseudonymize=pseudonymize,
            span=action.span,
        )

    def _redact_nodes(self, action: ast.Action, condition: ir.Expr | None) -> tuple[str, ...]:
        if action.redact:
            return tuple(self.node_for(name, CONTENT) for name, _ in action.redact)
        scanned = [
            n.node
            for n in (ir.walk(condition) if condition is not None else [])
            if isinstance(n, ir.Detect) and n.input == CONTENT
        ]
        if not scanned:
            hint = "name them: fallback redact pii, keys"
            message = "`fallback redact` has no detector on `content` to take findings from"
            self.c.error("P504", message, action.span, hint)
        return tuple(dict.fromkeys(scanned))


def _expr_cost_us(expr: ir.Expr) -> int:
    """A rough cost of evaluating an expression, detectors aside: 0.2 us per node, 5 us per regex."""
    nodes = ir.walk(expr)
    return len(nodes) // 5 + 5 * sum(isinstance(n, ir.Match) for n in nodes)
