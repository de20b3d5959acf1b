"""Diagnostics: stable codes, spans, the compiler-style text rendering and the JSON form."""

from __future__ import annotations

import json
from pathlib import Path

from dsl.compiler import run
from dsl.diagnostics import (
    CODES,
    CompileError,
    Diagnostic,
    Severity,
    Span,
    render,
    render_all,
    to_json,
)

SOURCE = 'ruleset t version "1" {\n  rule r on input {\n    when contnet == "x" then block\n  }\n}\n'


def diag(
    line: int = 3, column: int = 10, end: int = 17, hint: str | None = "did you mean `content`?"
) -> Diagnostic:
    return Diagnostic("P200", "unknown name `contnet`", Span("a.pal", line, column, line, end), hint)


def test_codes_are_stable_and_titled() -> None:
    assert all(len(code) == 4 and code[0] in "PW" and code[1:].isdigit() for code in CODES)
    assert all(title and title == title.strip() for title in CODES.values())
    assert CODES["P100"] == "syntax error"
    assert CODES["P601"] == "import cycle"


def test_span_str_is_file_line_col() -> None:
    assert str(Span("dir/a.pal", 3, 10, 3, 17)) == "dir/a.pal:3:10"


def test_render_layout() -> None:
    text = render(diag(), {"a.pal": SOURCE})
    assert text.splitlines() == [
        "a.pal:3:10: error[P200]: unknown name `contnet`",
        '   3 |     when contnet == "x" then block',
        "     |          ^^^^^^^",
        "     = hint: did you mean `content`?",
    ]


def test_render_without_hint() -> None:
    text = render(diag(hint=None), {"a.pal": SOURCE})
    assert "hint" not in text
    assert len(text.splitlines()) == 3


def test_render_without_source() -> None:
    text = render(diag(), {})
    assert text.splitlines() == [
        "a.pal:3:10: error[P200]: unknown name `contnet`",
        "     = hint: did you mean `content`?",
    ]


def test_render_span_past_the_end_of_the_file() -> None:
    text = render(diag(line=99), {"a.pal": SOURCE})
    assert text.splitlines()[0].startswith("a.pal:99:10:")
    assert "|" not in text


def test_caret_is_at_least_one_wide() -> None:
    text = render(diag(end=10), {"a.pal": SOURCE})
    assert text.splitlines()[2] == "     |          ^"


def test_caret_over_several_lines_runs_to_the_end_of_the_first() -> None:
    d = Diagnostic("P500", "never", Span("a.pal", 3, 5, 4, 4))
    caret = render(d, {"a.pal": SOURCE}).splitlines()[2]
    assert caret.endswith("^" * len('when contnet == "x" then block'))


def test_caret_keeps_tabs_aligned() -> None:
    source = "\t\twhen x"
    d = Diagnostic("P200", "unknown name `x`", Span("t.pal", 1, 8, 1, 9))
    lines = render(d, {"t.pal": source}).splitlines()
    assert lines[1].endswith(source)
    assert lines[2].endswith("\t\t     ^")


def test_warning_severity() -> None:
    d = Diagnostic("W500", "partly empty", Span("a.pal", 1, 1, 1, 2), severity=Severity.WARNING)
    assert not d.is_error
    assert render(d, {}).startswith("a.pal:1:1: warning[W500]: partly empty")


def test_render_all_separates_diagnostics() -> None:
    text = render_all([diag(), diag(hint=None)], {"a.pal": SOURCE})
    assert text.count("error[P200]") == 2
    assert "\n\n" in text


def test_json() -> None:
    data = json.loads(
        to_json([diag(), Diagnostic("W500", "w", Span("b.pal", 1, 2, 1, 3), severity=Severity.WARNING)])
    )
    assert data == [
        {
            "code": "P200",
            "message": "unknown name `contnet`",
            "span": {"file": "a.pal", "line": 3, "column": 10, "end_line": 3, "end_column": 17},
            "hint": "did you mean `content`?",
            "severity": "error",
        },
        {
            "code": "W500",
            "message": "w",
            "span": {"file": "b.pal", "line": 1, "column": 2, "end_line": 1, "end_column": 3},
            "hint": None,
            "severity": "warning",
        },
    ]


def test_compile_error_carries_every_diagnostic() -> None:
    error = CompileError([diag(), diag(line=2)], {"a.pal": SOURCE})
    assert len(error.diagnostics) == 2
    assert "a.pal:3:10" in str(error) and "a.pal:2:10" in str(error)


def test_real_diagnostics_render_with_the_compilers_sources(tmp_path: Path) -> None:
    path = tmp_path / "x.pal"
    path.write_text(SOURCE)
    c = run(str(path))
    assert [d.code for d in c.diagnostics] == ["P200"]
    text = render_all(c.diagnostics, c.sources)
    assert f"{path}:3:10: error[P200]" in text
    assert '    when contnet == "x" then block' in text
    assert "^^^^^^^" in text
