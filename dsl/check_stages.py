"""The checking stages: parse (with imports), resolve names and settings, check detectors and types."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from detectors.specs import SPECS, DetectorSpec, Params
from dsl import ast
from dsl.compile_state import Compilation, ResolvedDetector, TypedRule
from dsl.diagnostics import Diagnostic, Severity, Span
from dsl.expressions import DetectorInfo, ExprChecker, suggest
from dsl.sources import Loader
from dsl.types import ROOT_FIELDS, Stage

# `audit excerpts N`: characters of each message (and of the tool arguments) kept, masked, in the
# audit record. An excerpt is context for an auditor, not a copy of the conversation.
MAX_EXCERPT_CHARS = 1000
AUDIT_OPTIONS = ("excerpts",)

# Stage 1: parse


def parse_stage(c: Compilation) -> None:
    loader = Loader(c.reader)
    loader.load(c.root)
    c.sources, c.diagnostics[:0] = loader.sources, loader.diagnostics
    c.modules = list(loader.modules.values())


# Stage 2: resolve


def resolve_stage(c: Compilation) -> None:
    root, *libraries = c.modules
    body = ast.Body(root.body.kind, root.body.name, root.body.span, root.body.name_span)
    body.version, body.settings = root.body.version, root.body.settings
    for module in (*reversed(libraries), root):
        body.detectors.extend(module.body.detectors)
        body.rules.extend(module.body.rules)
    c.body = body
    _check_unique(c, [(d.name, d.name_span) for d in body.detectors], "detector")
    _check_unique(c, [(r.name, r.name_span) for r in body.rules], "rule")
    _check_unique(c, [(s.key, s.span) for s in body.settings], "setting")
    _check_budget(c)
    _check_audit(c)
    for rule in body.rules:
        for name, span in rule.stages:
            if name not in Stage.__members__.values():
                hint = suggest(name, [s.value for s in Stage])
                c.error("P205", f"unknown stage `{name}`", span, hint)


def _check_unique(c: Compilation, named: list[tuple[str, Span]], what: str) -> None:
    first: dict[str, Span] = {}
    for name, span in named:
        if name in first:
            code = "P208" if what == "setting" else "P204"
            c.error(code, f"duplicate {what} `{name}`", span, f"first declared at {first[name]}")
        else:
            first[name] = span


def _check_budget(c: Compilation) -> None:
    budget = c.setting("budget")
    if budget is not None and budget.detail != "p95":
        hint = "write `budget p95 25ms`"
        c.error("P503", f"budgets are set on p95, not `{budget.detail}`", budget.span, hint)


def _check_audit(c: Compilation) -> None:
    assert c.body is not None
    for setting in c.body.settings:
        if not setting.key.startswith("audit "):
            continue
        where = setting.detail_span or setting.span
        if setting.detail not in AUDIT_OPTIONS:
            hint = suggest(setting.detail, AUDIT_OPTIONS) or "write `audit excerpts 200`"
            c.error("P505", f"unknown audit setting `{setting.detail}`", where, hint)
            continue
        value, where = setting.value, setting.value_span or setting.span
        hint = f"write a whole number of characters per message from 1 to {MAX_EXCERPT_CHARS}"
        if not isinstance(value, int) or isinstance(value, bool):
            c.error("P505", f"`audit excerpts` takes a whole number of characters, not {value}", where, hint)
        elif value < 1:
            hint = "leave the line out to record no excerpt at all (the default)"
            c.error("P505", f"`audit excerpts` must be at least 1 character, not {value}", where, hint)
        elif value > MAX_EXCERPT_CHARS:
            message = f"`audit excerpts` keeps at most {MAX_EXCERPT_CHARS} characters a message, not {value}"
            hint = "an excerpt gives an auditor context; it is not a copy of the conversation"
            c.error("P505", message, where, hint)


# Stage 3: check detectors


def check_detectors_stage(c: Compilation) -> None:
    assert c.body is not None
    for decl in c.body.detectors:
        spec = SPECS.get(decl.kind)
        c.broken_detectors.add(decl.name)
        if spec is None:
            hint = suggest(decl.kind, SPECS) or f"known kinds: {', '.join(sorted(SPECS))}"
            c.error("P202", f"unknown detector kind `{decl.kind}`", decl.kind_span, hint)
            continue
        params = _validate_params(c, decl, spec)
        if params is not None:
            c.detectors[decl.name] = ResolvedDetector(decl, spec, params)
            c.broken_detectors.discard(decl.name)


def _plain(value: ast.ParamValue) -> Any:
    if isinstance(value, ast.Ident):
        return value.name
    if isinstance(value, ast.Duration):
        return value.micros
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _validate_params(c: Compilation, decl: ast.DetectorDecl, spec: DetectorSpec) -> Params | None:
    _check_unique(c, [(p.name, p.span) for p in decl.params], "parameter")
    by_name = {p.name: p for p in decl.params}
    try:
        return spec.params.model_validate({name: _plain(p.value) for name, p in by_name.items()})
    except ValidationError as exc:
        for problem in exc.errors():
            _param_problem(c, decl, spec, by_name, problem)
        return None


def _param_problem(
    c: Compilation,
    decl: ast.DetectorDecl,
    spec: DetectorSpec,
    by_name: Mapping[str, ast.Param],
    problem: Any,
) -> None:
    name = str(problem["loc"][0]) if problem["loc"] else ""
    known = list(spec.params.model_fields)
    if problem["type"] == "extra_forbidden":
        hint = suggest(name, known) or f"{spec.name}() takes: {', '.join(known)}"
        c.error("P400", f"{spec.name}() has no parameter `{name}`", by_name[name].span, hint)
    elif problem["type"] == "missing":
        c.error("P401", f"{spec.name}() needs the parameter `{name}`", decl.span)
    else:
        message = str(problem["msg"]).removeprefix("Value error, ")
        code = "P403" if "regular expression" in message else "P402"
        where = ".".join(str(part) for part in problem["loc"])
        c.error(code, f"`{where}`: {message}", by_name[name].value_span)


# Stage 4: check types


def check_types_stage(c: Compilation) -> None:
    assert c.body is not None
    infos = {
        name: DetectorInfo(r.spec.name, r.spec.finding_types(r.params)) for name, r in c.detectors.items()
    }
    for rule in c.body.rules:
        checker = ExprChecker(infos, SPECS, c.broken_detectors)
        conditions = [checker.condition(arm.condition) for arm in rule.arms]
        c.diagnostics.extend(checker.diagnostics)
        for arm in rule.arms:
            _check_redact(c, arm.action, infos)
        _check_stages(c, rule, checker.roots)
        if all(cond is not None for cond in conditions):
            c.typed_rules.append(TypedRule(rule, [cond for cond in conditions if cond is not None]))


def _check_redact(c: Compilation, action: ast.Action, infos: Mapping[str, DetectorInfo]) -> None:
    for name, span in action.redact:
        if name not in infos and name not in c.broken_detectors:
            c.error("P200", f"unknown detector `{name}` in redact", span, suggest(name, infos))


def _check_stages(c: Compilation, rule: ast.Rule, roots: Mapping[str, Span]) -> None:
    stages = {Stage(name) for name, _ in rule.stages if name in Stage.__members__.values()}
    for root, span in roots.items():
        available = ROOT_FIELDS[root].stages
        missing = sorted(stages - available)
        if not missing:
            continue
        where = ", ".join(sorted(available))
        if not stages & available:
            message = f"rule `{rule.name}` can never run: `{root}` exists only on {where}"
            c.error("P502", message, span, f"add one of {where} to the rule's stages")
        else:
            message = f"`{root}` is empty on {', '.join(missing)}; it exists only on {where}"
            c.diagnostics.append(Diagnostic("W500", message, span, severity=Severity.WARNING))
