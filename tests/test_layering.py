"""The layers of docs/design.md, checked on the source: each imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Top to bottom. A module may import its own unit and the units of lower layers; units that share
# a layer (the front doors; the repository's scripts) never import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("benchmarks", "training"),  # the repository's scripts: they import the product, never the reverse
    ("engine.cli",),  # the `palisade` commands, `palisade bench` among them
    ("engine.server", "engine.client"),  # the front doors: adapt a protocol to Guard, or call one
    # adapters over Guard: Envoy's ext_proc and LiteLLM's guardrail API (hosted by engine.server), MCP
    ("engine.envoy", "engine.mcp", "engine.http"),
    ("engine.protocol",),  # the gRPC wire: generated code and the proto <-> domain codecs
    ("engine.telemetry",),  # Prometheus metrics and OpenTelemetry traces behind engine.runtime.observer
    ("engine.guard",),  # the Check use case
    ("engine.config",),  # the service's settings
    # the [envoy] and [mcp] tables' models: engine.config holds them, their adapters read them
    ("engine.envoy.config", "engine.mcp.config", "engine.http.config"),
    ("engine.approvals",),
    ("engine.audit",),
    ("engine.store",),  # PostgreSQL for replicas: connections, the schema and its migrations
    ("engine.runtime",),  # requests, decisions, the evaluator, the registry
    ("dsl",),
    ("detectors",),
)
PACKAGES = ("benchmarks", "training", "engine", "dsl", "detectors")
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports by absolute name (``from a import b`` counts a.b too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "gen" not in p.relative_to(ROOT).parts]


def _name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def unit_of(module: str) -> str | None:
    """The layer unit that holds ``module`` (the longest matching prefix), or None if none does."""
    matches = [u for u in RANK if module == u or module.startswith(u + ".")]
    return max(matches, key=len) if matches else None


def offences(module: str, imported: set[str]) -> list[str]:
    """The imports of ``module`` that go up a layer or sideways to a peer."""
    own = unit_of(module)
    found = []
    for name in sorted(imported):
        target = unit_of(name)
        if own is None or target is None or target == own:
            continue
        if RANK[target] <= RANK[own]:
            found.append(f"{module} ({own}) imports {name} ({target})")
    return found


def test_every_module_belongs_to_a_layer() -> None:
    outside = [
        _name(p)
        for package in PACKAGES
        for p in _modules(package)
        if unit_of(_name(p)) is None and _name(p) != "engine"
    ]
    assert not outside, "add these to LAYERS (and docs/design.md)"


def test_imports_go_down_the_layers() -> None:
    found = [
        offence
        for package in PACKAGES
        for path in _modules(package)
        for offence in offences(_name(path), _imports(path))
    ]
    assert not found


@pytest.mark.parametrize(
    ("module", "imported", "allowed"),
    [
        ("engine.runtime.evaluator", "engine.guard", False),  # up
        ("engine.client.guard_client", "engine.server.app", False),  # sideways between front doors
        ("engine.guard", "benchmarks.runner", False),  # the product never imports the scripts
        ("dsl.parser", "engine.runtime.request", False),
        ("engine.server.app", "engine.guard", True),
        ("engine.server.app", "engine.envoy.server", True),  # the server process hosts the processor
        ("engine.envoy.processor", "engine.server.app", False),
        ("engine.envoy.checks", "engine.protocol.request_codec", True),  # the same limits as gRPC
        ("engine.config", "engine.envoy.config", True),
        ("engine.envoy.config", "engine.config", False),
        ("benchmarks.compare", "engine.cli.bench.runner", True),
        ("engine.guard", "engine.telemetry", False),  # Guard reports to engine.runtime.observer only
        ("engine.audit.writer", "engine.runtime.observer", True),
    ],
)
def test_the_check_itself(module: str, imported: str, allowed: bool) -> None:
    assert (not offences(module, {imported})) is allowed


def _third_party_users(top: str) -> set[str]:
    return {
        unit_of(_name(path)) or _name(path)
        for package in PACKAGES
        for path in _modules(package)
        if top in {n.partition(".")[0] for n in _imports(path)}
    }


@pytest.mark.parametrize(
    ("top", "allowed"),
    [
        ("lark", {"dsl"}),
        ("onnxruntime", {"detectors", "benchmarks", "training"}),
        ("presidio_analyzer", {"detectors", "benchmarks"}),
        ("transformers", {"training"}),
        (
            "grpc",
            {"engine.server", "engine.client", "engine.envoy", "engine.protocol", "engine.cli", "benchmarks"},
        ),
        ("envoy", {"engine.envoy"}),  # xds-protos: Envoy's generated messages (engine/envoy/wire.py)
        ("prometheus_client", {"engine.telemetry"}),
        ("opentelemetry", {"engine.telemetry", "benchmarks"}),  # benchmarks: an OTLP receiver
    ],
)
def test_third_party_packages_stay_in_their_layer(top: str, allowed: set[str]) -> None:
    assert _third_party_users(top) <= allowed


def test_only_the_protocol_imports_generated_code() -> None:
    offenders = [
        _name(path)
        for package in PACKAGES
        for path in _modules(package)
        if unit_of(_name(path)) != "engine.protocol"
        and any(name.startswith("engine.protocol.gen") for name in _imports(path))
    ]
    assert not offenders


def test_detectors_do_not_import_each_other() -> None:
    shared = {
        "detectors.base",
        "detectors.specs",
        "detectors.textscan",
        "detectors.textforms",  # hidden characters, encoded blocks, normalisation (engine.runtime too)
        "detectors.confusables",
        "detectors.catalogue",  # the model catalogue: the compiler checks names and digests with it
        "detectors.window_filter",  # the classifier's first pass (training fits it too)
        "detectors",
    }
    offenders = [
        f"{_name(path)} imports {name}"
        for path in _modules("detectors")
        for name in _imports(path)
        if name.startswith("detectors.") and not _shared_or_own(name, _name(path), shared)
    ]
    assert not offenders


def _shared_or_own(name: str, module: str, shared: set[str]) -> bool:
    """Whether ``name`` is a shared module (or a name in one), or in the importer's own detector."""
    own = ".".join(module.split(".")[:2])  # detectors.pii for detectors.pii.phones
    return name in shared or name.rpartition(".")[0] in shared or name.startswith(own + ".")
