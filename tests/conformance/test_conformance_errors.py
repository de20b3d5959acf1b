"""Error conformance: each file under errors/ states the diagnostic the compiler must report.

A case is a ``.pal`` file directly in ``errors/`` or a ``main.pal`` in one of its subdirectories
(the other files there are the libraries it imports). Its first line reads

    # expect: CODE at [FILE:]LINE:COL [~ TEXT]

FILE (relative to ``errors/``) defaults to the case file itself; TEXT, when given, must appear in
the diagnostic's message or hint.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from dsl.compiler import run
from dsl.diagnostics import CODES, Diagnostic, render

ERRORS = Path(__file__).parent / "errors"
HEADER = re.compile(
    r"#\s*expect:\s*(?P<code>[PW]\d{3})\s+at\s+(?:(?P<file>[\w./-]+\.pal):)?(?P<line>\d+):(?P<col>\d+)"
    r"(?:\s*~\s*(?P<text>.+?))?\s*$"
)


@dataclass(frozen=True)
class Expectation:
    code: str
    file: Path
    line: int
    column: int
    text: str | None


def case_files() -> list[Path]:
    direct = sorted(p for p in ERRORS.glob("*.pal") if p.is_file())
    nested = sorted(ERRORS.glob("*/main.pal"))
    return direct + nested


def expectation(path: Path) -> Expectation:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    found = HEADER.match(first)
    assert found, f"{path}: the first line must be '# expect: CODE at LINE:COL', not {first!r}"
    file = ERRORS / found["file"] if found["file"] else path
    return Expectation(found["code"], file, int(found["line"]), int(found["col"]), found["text"])


def same_file(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


CASES = case_files()


def case_id(path: Path) -> str:
    return str(path.relative_to(ERRORS).with_suffix(""))


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_error_case(path: Path) -> None:
    want = expectation(path)
    c = run(str(path))
    found = [
        d
        for d in c.diagnostics
        if d.code == want.code
        and same_file(d.span.file, want.file)
        and (d.span.line, d.span.column) == (want.line, want.column)
    ]
    listed = "\n".join(f"  {d.span}: {d.code}: {d.message}" for d in c.diagnostics) or "  (none)"
    assert found, f"expected {want.code} at {want.line}:{want.column}; the compiler reported:\n{listed}"
    diagnostic = found[0]
    if want.text is not None:
        said = f"{diagnostic.message}\n{diagnostic.hint or ''}"
        assert want.text in said, f"{want.text!r} not in {said!r}"
    if want.code.startswith("P"):
        assert not c.ok, "an error case must fail compilation"
    assert_rendered(diagnostic, c.sources)


def assert_rendered(diagnostic: Diagnostic, sources: dict[str, str]) -> None:
    """The text form: ``file:line:col: severity[code]: message``, the source line, and a caret."""
    span = diagnostic.span
    text = render(diagnostic, sources)
    lines = text.splitlines()
    assert lines[0].startswith(f"{span.file}:{span.line}:{span.column}: ")
    assert f"[{diagnostic.code}]" in lines[0]
    assert diagnostic.message in lines[0]
    source_line = sources[span.file].splitlines()[span.line - 1]
    assert lines[1].endswith(source_line)
    assert lines[1].lstrip().startswith(f"{span.line} | ")
    caret_line = lines[2]
    # The caret sits under the span's first column of the source line.
    offset = len(lines[1]) - len(source_line)
    assert caret_line[offset + span.column - 1] == "^", text
    assert set(caret_line[offset : offset + span.column - 1]) <= {" ", "\t"}
    if diagnostic.hint:
        assert f"hint: {diagnostic.hint}" in text


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 45


def test_every_triggerable_code_has_a_case() -> None:
    covered = {expectation(path).code for path in CASES}
    assert set(CODES) <= covered, sorted(set(CODES) - covered)


def test_helper_files_are_not_cases() -> None:
    names = {case_id(p) for p in CASES}
    assert "cycle/a" not in names
    assert "cycle/main" in names
