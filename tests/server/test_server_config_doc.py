"""docs/configuration.md stays true: its example file is every setting at its default."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from engine.audit.config import AuditConfig, Retention
from engine.config import Limits, MetricsConfig, ServeConfig, TracingConfig, load_config
from engine.envoy.config import EnvoyConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _example() -> str:
    found = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert found, "docs/configuration.md has no ```toml example"
    return found.group(1)


def test_the_documented_file_sets_every_setting_to_its_default(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text(_example(), encoding="utf-8")
    loaded = load_config(str(path))
    assert (loaded.rulesets, loaded.data_dir) == (str(tmp_path / "rulesets"), str(tmp_path / "data"))
    assert loaded.model_copy(update={"rulesets": "rulesets", "data_dir": "data"}) == ServeConfig()


def test_every_setting_is_documented() -> None:
    example = _example()
    models: list[type[BaseModel]] = [
        ServeConfig,
        Limits,
        AuditConfig,
        Retention,
        EnvoyConfig,
        MetricsConfig,
        TracingConfig,
    ]
    missing = [
        f"{model.__name__}.{name}"
        for model in models
        for name in model.model_fields
        if not re.search(rf"^(#\s*)?{name} =|^\[(audit\.)?{name}\]", example, re.MULTILINE)
    ]
    assert not missing, f"not in docs/configuration.md: {missing}"
