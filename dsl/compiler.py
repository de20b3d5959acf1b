"""The compiler: a named list of stages from source file to decision graph, with hooks between them."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from dsl import ir
from dsl.check_stages import check_detectors_stage, check_types_stage, parse_stage, resolve_stage
from dsl.compile_state import Compilation
from dsl.diagnostics import CompileError, Diagnostic, Span
from dsl.graph import build_graph_stage
from dsl.optimise import optimise_stage
from dsl.sources import Reader, read_file

StageFn = Callable[[Compilation], None]
Hook = Callable[[Compilation], None]

STAGES: tuple[tuple[str, StageFn], ...] = (
    ("parse", parse_stage),
    ("resolve", resolve_stage),
    ("check_detectors", check_detectors_stage),
    ("check_types", check_types_stage),
    ("build_graph", build_graph_stage),
    ("optimise", optimise_stage),
)
STAGE_NAMES = tuple(name for name, _ in STAGES)
# Checking stages that still run after an earlier checking stage failed, so one `palisade check`
# reports every problem; the graph is built only when all of them pass.
_CONTINUE_ON_ERROR = frozenset({"resolve", "check_detectors"})


def run(
    path: str,
    *,
    reader: Reader = read_file,
    after: Mapping[str, Hook] | None = None,
    until: str | None = None,
) -> Compilation:
    """Run the stages on ``path`` in order, stopping once a stage reports an error (the checking
    stages all run first, so that every problem is reported at once).

    ``after`` maps a stage name to a hook called once that stage succeeded; ``until`` stops
    after the named stage (a library file, which has no graph, is checked up to check_types).
    """
    for name in (*(after or {}), *([until] if until else [])):
        if name not in STAGE_NAMES:
            raise ValueError(f"unknown compiler stage {name!r}; stages: {', '.join(STAGE_NAMES)}")
    c = Compilation(root=os.path.normpath(path), reader=reader)
    for name, stage in STAGES:
        stage(c)
        if not c.ok and name not in _CONTINUE_ON_ERROR:
            break
        if after and name in after and c.ok:
            after[name](c)
        if name == until or (name == "check_types" and c.body and c.body.kind == "library"):
            break
    c.diagnostics.sort(key=lambda d: (d.span.file != c.root, d.span.file, d.span.line, d.span.column))
    return c


def compile_file(path: str, *, reader: Reader = read_file) -> ir.Graph:
    """Compile one ruleset file to its graph, or raise CompileError with every diagnostic."""
    c = run(path, reader=reader)
    if not c.ok or c.graph is None:
        errors = [d for d in c.diagnostics if d.is_error]
        if not errors:
            message = f"{c.root} is a library; only a ruleset compiles to a graph"
            errors = [Diagnostic("P602", message, Span(c.root, 1, 1, 1, 2))]
        raise CompileError(errors, c.sources)
    return c.graph


def compile_source(text: str, file: str = "<string>") -> ir.Graph:
    """Compile a ruleset held in memory (imports are read from disk relative to ``file``)."""
    root = os.path.normpath(file)

    def reader(path: str) -> str:
        return text if path == root else read_file(path)

    return compile_file(file, reader=reader)
