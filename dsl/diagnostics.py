"""Diagnostics as data: stable codes, source spans, hints, and their text and JSON renderings."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; lines and columns are 1-based, the end column is exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


# Every code the compiler can emit, with a one-line title. docs/errors.md explains each.
CODES: dict[str, str] = {
    "P100": "syntax error",
    "P101": "unexpected character",
    "P102": "source too large or too deeply nested",
    "P103": "invalid literal",
    "P200": "unknown name",
    "P201": "unknown field",
    "P202": "unknown detector kind",
    "P203": "unknown attribute or method",
    "P204": "duplicate name",
    "P205": "unknown stage",
    "P206": "unknown finding type",
    "P207": "wrong number of arguments",
    "P208": "duplicate ruleset setting",
    "P300": "type mismatch",
    "P301": "condition is not a boolean",
    "P302": "argument has the wrong type",
    "P400": "unknown detector parameter",
    "P401": "missing detector parameter",
    "P402": "invalid detector parameter value",
    "P403": "invalid regular expression",
    "P500": "arm can never match",
    "P501": "arm is shadowed by an earlier arm",
    "P502": "rule cannot run on its stages",
    "P503": "invalid budget",
    "P504": "redaction needs detectors",
    "P505": "invalid audit setting",
    "P600": "import not found",
    "P601": "import cycle",
    "P602": "imported file is not a library",
    "P700": "estimated cost exceeds the budget",
    "W500": "field is not available on some of the rule's stages",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One compiler finding: what is wrong, where, and how to fix it."""

    code: str
    message: str
    span: Span
    hint: str | None = None
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


def _caret_line(span: Span, source_line: str) -> str:
    start = max(span.column - 1, 0)
    end = span.end_column - 1 if span.end_line == span.line else len(source_line)
    width = max(end - start, 1)
    prefix = "".join(ch if ch == "\t" else " " for ch in source_line[:start])
    return prefix + "^" * width


def render(diagnostic: Diagnostic, sources: Mapping[str, str]) -> str:
    """Render like a compiler: ``file:line:col: severity[code]: message``, the line, a caret, a hint."""
    span = diagnostic.span
    head = f"{span}: {diagnostic.severity.value}[{diagnostic.code}]: {diagnostic.message}"
    lines = [head]
    text = sources.get(span.file)
    if text is not None:
        source_lines = text.splitlines()
        if 0 < span.line <= len(source_lines):
            source_line = source_lines[span.line - 1]
            gutter = f"{span.line:>4} | "
            lines.append(gutter + source_line)
            lines.append(" " * (len(gutter) - 2) + "| " + _caret_line(span, source_line))
    if diagnostic.hint:
        lines.append(f"     = hint: {diagnostic.hint}")
    return "\n".join(lines)


def render_all(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str]) -> str:
    return "\n\n".join(render(d, sources) for d in diagnostics)


def to_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diagnostics], indent=2)


class CompileError(Exception):
    """Raised by the compile helpers when a ruleset has errors; carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic], sources: Mapping[str, str]) -> None:
        self.diagnostics = diagnostics
        self.sources = dict(sources)
        super().__init__(render_all(diagnostics, sources))
