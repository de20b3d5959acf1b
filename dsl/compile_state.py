"""The state that compiler stages share: sources, syntax trees, resolved detectors, typed rules, graph."""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.specs import DetectorSpec, Params
from dsl import ast, ir
from dsl.diagnostics import Diagnostic, Span
from dsl.sources import Reader, read_file


@dataclass(frozen=True, slots=True)
class ResolvedDetector:
    decl: ast.DetectorDecl
    spec: DetectorSpec
    params: Params


@dataclass(slots=True)
class TypedRule:
    rule: ast.Rule
    conditions: list[ir.Expr]


@dataclass(slots=True)
class Compilation:
    """Everything the stages know about one ruleset; hooks may read it after any stage."""

    root: str
    reader: Reader = read_file
    sources: dict[str, str] = field(default_factory=dict)
    modules: list[ast.Module] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    body: ast.Body | None = None
    detectors: dict[str, ResolvedDetector] = field(default_factory=dict)
    broken_detectors: set[str] = field(default_factory=set)  # declared, but with errors
    typed_rules: list[TypedRule] = field(default_factory=list)
    graph: ir.Graph | None = None

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, hint))

    def setting(self, key: str) -> ast.Setting | None:
        assert self.body is not None
        return next((s for s in self.body.settings if s.key == key), None)
