"""Readable views of a decision graph: an indented text outline and Graphviz DOT."""

from __future__ import annotations

import json

from dsl import ir

_UNITS = (("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1_000), ("us", 1))


def format_duration(micros: int) -> str:
    """The shortest exact spelling, as a ruleset would write it: 1800000000 -> ``30m``."""
    unit, size = next((u, s) for u, s in _UNITS if micros % s == 0)
    return f"{micros // size}{unit}"


def _action(action: ir.ActionNode) -> str:
    parts = [action.outcome.label]
    if action.fallback:
        parts.append(action.fallback)
        parts.extend(f'"{v}"' for v in (action.fallback_value,) if v)
        parts.extend(action.redact)
    if action.queue:
        parts.append(f'to "{action.queue}" within {format_duration(action.within_us)}')
        parts.extend(
            word for word, on in (("else allow", action.on_expiry), ("reusable", action.reusable)) if on
        )
    if action.reason:
        parts.append(json.dumps(action.reason))
    return " ".join(parts)


def to_text(graph: ir.Graph) -> str:
    lines = [
        f"ruleset {graph.name} {graph.version}  {graph.content_hash}",
        f"  budget p95 {format_duration(graph.budget_p95_us)}, estimated {graph.estimated_cost_us}us",
        f"  default {_action(graph.default)}; on error {_action(graph.on_error)}",
        *([f"  audit excerpts {graph.audit_excerpts} (masked)"] if graph.audit_excerpts else []),
        "  detectors:",
    ]
    for node in sorted(graph.detectors.values(), key=lambda n: (n.cost_class, n.id)):
        used_by = ", ".join(node.decls)
        lines.append(f"    {node.id}: {node.kind} cost {node.cost_us}us (declared as {used_by})")
    lines.append("  rules:")
    for rule in graph.rules:
        lines.append(f"    {rule.name} on {', '.join(sorted(rule.stages))}")
        for arm in rule.arms:
            lines.append(f"      when {ir.render(arm.condition)}")
            lines.append(f"        then {_action(arm.action)}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return json.dumps(text)


def to_dot(graph: ir.Graph) -> str:
    """Fields feed detectors, detectors and fields feed arms, arms feed the outcome they produce."""
    out = [f"digraph {_quote(graph.name)} {{", "  rankdir=LR;", "  node [fontname=monospace];"]
    fields: set[str] = set()
    for node in graph.detectors.values():
        out.append(f"  {_quote(node.id)} [shape=box, label={_quote(f'{node.id} [{node.kind}]')}];")
    for rule in graph.rules:
        for arm in rule.arms:
            arm_id = f"{rule.name}#{arm.index}"
            label = f"{arm_id}\nwhen {ir.render(arm.condition)}"  # json.dumps writes DOT's line break
            out.append(f"  {_quote(arm_id)} [shape=ellipse, label={_quote(label)}];")
            for expr in ir.walk(arm.condition):
                if isinstance(expr, ir.Field):
                    fields.add(".".join(expr.path))
                    out.append(f"  {_quote('.'.join(expr.path))} -> {_quote(arm_id)};")
            for det in sorted(arm.detectors):
                out.append(f"  {_quote(det)} -> {_quote(arm_id)};")
            out.append(f"  {_quote(arm_id)} -> {_quote(arm.action.outcome.label.upper())};")
    for detector in graph.detectors.values():
        for field_node in ir.walk(detector.input):
            if isinstance(field_node, ir.Field):
                fields.add(".".join(field_node.path))
                out.append(f"  {_quote('.'.join(field_node.path))} -> {_quote(detector.id)};")
    out.extend(f"  {_quote(f)} [shape=plaintext];" for f in sorted(fields))
    out.append("}")
    return "\n".join(out)
