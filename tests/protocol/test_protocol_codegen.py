"""The generated code in engine/protocol/gen is exactly what `python -m engine.protocol.codegen` writes."""

from __future__ import annotations

import ast
from pathlib import Path

from engine.protocol import codegen


def test_the_generated_code_is_up_to_date(tmp_path: Path) -> None:
    fresh = tmp_path / "gen"
    codegen.generate(fresh)
    committed, regenerated = codegen.tree(codegen.GEN_DIR), codegen.tree(fresh)
    stale = sorted(p for p in committed.keys() | regenerated.keys() if committed.get(p) != regenerated.get(p))
    assert not stale, f"stale generated files {stale}: run `python -m engine.protocol.codegen`"


def test_only_the_protocol_imports_the_generated_modules() -> None:
    root = codegen.ROOT
    offenders = []
    for package in ("dsl", "detectors", "engine", "benchmarks"):
        for path in (root / package).rglob("*.py"):
            relative = path.relative_to(root)
            if relative.parts[:2] == ("engine", "protocol"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            if any(m.startswith("engine.protocol.gen") or m.endswith("_pb2") for m in modules):
                offenders.append(str(relative))
    assert offenders == []
