"""The ruleset registry: compiles a directory of rulesets and finds the evaluator for a name and version."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from detectors.specs import DetectorSettings
from dsl.compiler import run
from dsl.diagnostics import CompileError, Diagnostic, Span
from dsl.ir import Graph
from engine.runtime.evaluator import Evaluator
from engine.runtime.request import Principal, quoted
from engine.runtime.rollout import Plan, Role, check_plans, in_canary, version_key

SOURCE_SUFFIX = ".pal"


class UnknownRuleset(LookupError):
    """No loaded ruleset has this name (and version, when one is pinned)."""

    def __init__(self, name: str, version: str, known: list[str]) -> None:
        pinned = f" version {quoted(version)}" if version else ""
        listed = ", ".join(known) or "none"
        super().__init__(f"no ruleset {quoted(name)}{pinned} is loaded (loaded: {listed})")
        self.name, self.version = name, version


def source_files(*paths: str) -> Iterator[str]:
    """Every .pal file under the given files and directories, in a stable order."""
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if name.endswith(SOURCE_SUFFIX):
                        yield os.path.join(folder, name)
        else:
            yield path


def compile_rulesets(*paths: str) -> dict[tuple[str, str], Graph]:
    """Compile every ruleset under ``paths``, by (name, version), loading no detector or model (so
    cheap enough to check files with); raise CompileError with all diagnostics if any fails."""
    errors: list[Diagnostic] = []
    sources: dict[str, str] = {}
    graphs: dict[tuple[str, str], Graph] = {}
    for path in source_files(*paths):
        c = run(path)
        sources.update(c.sources)
        errors.extend(d for d in c.diagnostics if d.is_error)
        graph = c.graph
        if graph is None or not c.ok:
            continue
        key = (graph.name, graph.version)
        if key in graphs:
            message = f"ruleset {graph.name} version {graph.version} is defined twice"
            errors.append(Diagnostic("P204", message, Span(path, 1, 1, 1, 2)))
            continue
        graphs[key] = graph
    if errors:
        raise CompileError(errors, sources)
    return graphs


@dataclass(frozen=True, slots=True)
class Registry:
    """Immutable: reloading builds a new registry, so a bad ruleset never replaces a good one."""

    by_key: dict[tuple[str, str], Evaluator]
    active: dict[str, Evaluator]
    plans: dict[str, Plan] = field(default_factory=dict)  # rollouts (engine/runtime/rollout.py)

    @classmethod
    def load(
        cls,
        *paths: str,
        settings: DetectorSettings | None = None,
        pool: ThreadPoolExecutor | None = None,
    ) -> Registry:
        """Compile every ruleset under ``paths``; raise CompileError with all diagnostics if any fails."""
        return cls.of(compile_rulesets(*paths), settings, pool)

    @classmethod
    def of(
        cls,
        graphs: dict[tuple[str, str], Graph],
        settings: DetectorSettings | None = None,
        pool: ThreadPoolExecutor | None = None,
        plans: dict[str, Plan] | None = None,
    ) -> Registry:
        """Evaluators for compiled ``graphs`` (their detectors and models loaded); the version served
        when a call pins none is the one its rollout plan makes active, else its highest. Raises
        rollout.RolloutError when a plan names a version that ``graphs`` lack."""
        plans = plans or {}
        check_plans(plans, set(graphs))
        by_key = {key: Evaluator(graph, settings, pool) for key, graph in graphs.items()}
        active: dict[str, Evaluator] = {}
        for (name, version), evaluator in by_key.items():
            current = active.get(name)
            if current is None or version_key(version) > version_key(current.graph.version):
                active[name] = evaluator
        for name, plan in plans.items():
            if plan.active:
                active[name] = by_key[(name, plan.active)]
        return cls(by_key, active, dict(plans))

    def answering(self, versions: Mapping[str, str]) -> Registry:
        """This registry with ``versions`` (by ruleset name) answering the calls that pin none, in place
        of the highest (engine/approvals/release.py picks them where a ruleset requires approvals)."""
        active = self.active | {name: self.by_key[(name, version)] for name, version in versions.items()}
        return replace(self, active=active)

    def warm(self) -> None:
        """Warm every ruleset version's detectors (Evaluator.warm), so that no Check loads anything;
        raises DetectorError naming the ruleset and the detector that failed."""
        for evaluator in self:
            evaluator.warm()

    def get(self, name: str, version: str = "") -> Evaluator:
        evaluator = self.by_key.get((name, version)) if version else self.active.get(name)
        if evaluator is None:
            known = [f"{n}@{v}" for n, v in sorted(self.by_key)]
            raise UnknownRuleset(name, version, known)
        return evaluator

    def route(self, name: str, version: str, principal: Principal) -> tuple[Evaluator, Role]:
        """The evaluator that answers: ``version`` when pinned, the canary for the principals in its
        share, else the active one. Raises UnknownRuleset."""
        plan = self.plans.get(name)
        if version:
            return self.get(name, version), Role.PINNED
        if plan is not None and in_canary(name, plan, principal):
            return self.get(name, plan.canary), Role.CANARY
        return self.get(name), Role.ACTIVE

    def shadow(self, name: str) -> Evaluator | None:
        """The version evaluated beside ``name``'s answers, never enforcing (None: no shadow)."""
        plan = self.plans.get(name)
        return self.by_key.get((name, plan.shadow)) if plan is not None and plan.shadow else None

    def __iter__(self) -> Iterator[Evaluator]:
        return iter(self.by_key.values())
