"""The import rules of DESIGN.md, checked on the source: each layer imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "gen" not in p.relative_to(ROOT).parts]


def _top(name: str) -> str:
    return name.partition(".")[0]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("detectors", {"dsl", "engine", "lark", "grpc"}),
        ("dsl", {"engine", "grpc", "onnxruntime", "presidio_analyzer", "transformers"}),
    ],
)
def test_lower_layers_do_not_import_upper_ones(package: str, forbidden: set[str]) -> None:
    offenders = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(package)
        for name in _imports(path)
        if _top(name) in forbidden
    }
    assert not offenders


def test_only_dsl_imports_lark() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("detectors", "engine", "benchmarks")
        for path in _modules(package)
        if "lark" in {_top(n) for n in _imports(path)}
    ]
    assert not offenders


def test_only_the_grpc_adapters_import_generated_code() -> None:
    adapters = {"server", "client.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("dsl", "detectors", "engine")
        for path in _modules(package)
        if not adapters & set(path.relative_to(ROOT).parts)
        and any(name.startswith("engine.protocol.gen") for name in _imports(path))
    ]
    assert not offenders


def test_detectors_do_not_import_each_other() -> None:
    shared = {
        "detectors.base",
        "detectors.specs",
        "detectors.textscan",
        "detectors.textforms",  # hidden characters, encoded blocks, normalisation (engine.runtime.plan too)
        "detectors.confusables",
        "detectors.catalogue",  # the model catalogue: the compiler checks names and digests with it
        "detectors.window_filter",  # the classifier's first pass (training fits it too)
        "detectors",
    }
    offenders = [
        f"{path.name} imports {name}"
        for path in _modules("detectors")
        for name in _imports(path)
        if name.startswith("detectors") and name not in shared
    ]
    assert not offenders
