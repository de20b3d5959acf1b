"""Every input in tests/fuzz/corpus as a regression test: .pal sources, .bin requests, .audit.json damage."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from audit_fuzz import assert_verify_answers, copy_log, corrupt
from fuzz_helpers import CORPUS, corpus_files
from language_fuzz import assert_compiles_or_explains, compile_text
from request_fuzz import assert_bytes_decode_or_are_refused

from dsl.compiler import run
from engine.config import Limits

KINDS = (".pal", ".bin", ".audit.json")
# What each source that once crashed the compiler gets now.
EXPECTED = {
    "deep-not-chain.pal": "P102",
    "long-or-chain.pal": "P102",
    "long-method-chain.pal": "P102",
    "long-index-chain.pal": "P102",
    "huge-integer.pal": "P103",
    "huge-float.pal": "P103",
    "huge-detector-parameter.pal": "P103",
    "huge-audit-excerpts.pal": "P103",
    "huge-budget.pal": "P103",
    "huge-escalation-window.pal": "P103",
    "import-path-with-nul.pal": "P600",
    "import-device.pal": "P600",
}


def cases(suffix: str) -> list[object]:
    return [pytest.param(path, id=path.name) for path in corpus_files(suffix)]


@pytest.mark.parametrize("path", cases(".pal"))
def test_source(path: Path) -> None:
    c = compile_text(path.read_bytes().decode("utf-8"))  # as written: \r stays \r
    assert_compiles_or_explains(c)
    if path.name in EXPECTED:
        assert EXPECTED[path.name] in {d.code for d in c.diagnostics}, c.diagnostics


@pytest.mark.parametrize("path", cases(".bin"))
def test_request_bytes(path: Path) -> None:
    assert_bytes_decode_or_are_refused(path.read_bytes(), Limits())


@pytest.mark.parametrize("path", cases(".audit.json"))
def test_audit_damage(path: Path, pristine: Path, tmp_path: Path) -> None:
    data_dir = copy_log(pristine, tmp_path / "data")
    assert_verify_answers(data_dir, corrupt(data_dir, json.loads(path.read_text(encoding="utf-8"))))


def test_the_corpus_holds_every_kind_and_nothing_else() -> None:
    names = [path.name for path in CORPUS.iterdir()]
    assert all(any(corpus_files(kind)) for kind in KINDS)
    assert [name for name in names if not name.endswith(KINDS)] == []
    assert set(EXPECTED) <= set(names)


@pytest.mark.timeout(20)
def test_an_import_of_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Found with `import "/dev/zero"` (read without end); a FIFO with no writer blocked open()."""
    os.mkfifo(tmp_path / "pipe.pal")
    (tmp_path / "root.pal").write_text('import "pipe.pal"\nruleset t version "1" {}\n', encoding="utf-8")
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(run(str(tmp_path / "root.pal"))), daemon=True)
    worker.start()
    worker.join(10)
    assert result, "the compiler waited on the FIFO"
    assert [d.code for d in result[0].diagnostics] == ["P600"]  # type: ignore[attr-defined]
