"""The README's tour ruleset compiles as shown, against the shipped library it imports."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from dsl.compiler import run

ROOT = Path(__file__).resolve().parents[2]


def test_the_tour_ruleset_compiles(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (tour,) = re.findall(r'```\n(import "lib/common\.pal".*?)```', readme, re.S)
    shutil.copytree(ROOT / "rulesets" / "lib", tmp_path / "lib")
    (tmp_path / "tour.pal").write_text(tour, encoding="utf-8")
    problems = [f"{d.code} {d.message}" for d in run(str(tmp_path / "tour.pal")).diagnostics if d.is_error]
    assert problems == []
