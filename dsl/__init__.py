"""The Palisade policy language: parse, check and compile rulesets into decision graphs."""

from dsl.compiler import STAGE_NAMES, compile_file, compile_source, run
from dsl.diagnostics import CompileError, Diagnostic, Severity, Span
from dsl.ir import Graph
from dsl.types import Outcome, Stage

__all__ = [
    "STAGE_NAMES",
    "CompileError",
    "Diagnostic",
    "Graph",
    "Outcome",
    "Severity",
    "Span",
    "Stage",
    "compile_file",
    "compile_source",
    "run",
]
