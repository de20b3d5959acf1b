"""The Check use case in one place: a request in, out a decision approvals kept and the audit recorded."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

from detectors.base import DetectorError
from dsl.ir import ActionNode, Graph
from engine.approvals import (
    Approval,
    ApprovalError,
    ApprovalGate,
    Approvals,
    ApprovalStore,
    ApprovalUnavailable,
    Gated,
)
from engine.approvals.pg_store import PgApprovalStore
from engine.approvals.release import Release, Unapproved, check_released, releases
from engine.audit import AuditError, AuditLog, AuditUnavailable
from engine.audit.events import rollout_entry, rollout_field, shadow_entry
from engine.audit.writer import HealthListener
from engine.config import ServeConfig
from engine.runtime.decision import Decision
from engine.runtime.evaluator import DEFAULT_RULE, Evaluator
from engine.runtime.ids import new_id
from engine.runtime.observer import observer
from engine.runtime.registry import Registry, compile_rulesets
from engine.runtime.request import Request
from engine.runtime.rollout import Plan, Role, RolloutError, load_plans, rollout_path
from engine.runtime.shadow import ShadowJob, ShadowRunner

log = logging.getLogger("palisade.guard")
SERVER_ACTOR = "palisade serve"  # who a rollout record names when the server put a version live itself


class StartError(RuntimeError):
    """Palisade could not start: no rulesets, or the audit log, approvals or address cannot be opened."""


@dataclass(frozen=True, slots=True)
class Checked:
    """One Check's answer: the decision as recorded, its id, and the approval an ESCALATE cites."""

    decision: Decision
    decision_id: str
    default: ActionNode  # the ruleset's default action (what the answer says when no rule matched)
    approval: Approval | None = None

    @property
    def cited(self) -> tuple[str, str]:
        """The rule that decided and its reason ("(default)" and the default's reason when none did)."""
        deciding = self.decision.deciding
        if self.decision.default_applied or not deciding:
            return DEFAULT_RULE, self.default.reason
        return deciding[0].rule, deciding[0].reason


def check_rulesets(config: ServeConfig) -> dict[tuple[str, str], Graph]:
    """Compile every ruleset, loading no model; raises dsl.diagnostics.CompileError with all
    diagnostics if any is bad, StartError if there are none."""
    if not os.path.exists(config.rulesets):
        raise StartError(f"rulesets: {config.rulesets} does not exist")
    graphs = compile_rulesets(config.rulesets)
    if not graphs:
        raise StartError(f"rulesets: no .pal ruleset found under {config.rulesets}")
    return graphs


class Guard:
    """Decides Checks: the ruleset's graph under the deadline, then approvals, then the audit record.

    Every front door (gRPC, the in-process API, and the adapters to come) calls ``check``; none of
    them knows this order. No record, no ALLOW: when the audit log cannot take the record, or the
    approvals cannot be kept, the answer is the ruleset's error policy, never ALLOW."""

    def __init__(
        self,
        registry: Registry,
        audit: AuditLog,
        approvals: Approvals,
        *,
        default_timeout_s: float | None = None,
    ) -> None:
        self.registry = registry  # replaced whole on reload; a call uses the one it started with
        self.audit = audit
        self.approvals = approvals
        self.default_timeout_s = default_timeout_s
        self._gate = ApprovalGate(approvals)
        self._owned: list[ThreadPoolExecutor] = []
        self.shadows = ShadowRunner(self._record_shadow, default_timeout_s)  # off the response path

    @classmethod
    def open(cls, config: ServeConfig | None = None, *, on_health: HealthListener | None = None) -> Guard:
        """A Guard for ``config`` (default: the defaults): its rulesets compiled and their detectors
        loaded and warmed (so that no Check loads anything), the audit log and the approvals in its
        data directory. ``on_health`` hears when the audit log stops (False) and starts (True) taking
        records. Close it when done."""
        config = config or ServeConfig()
        pool = ThreadPoolExecutor(config.detector_threads, thread_name_prefix="palisade-det")
        try:
            plans = load_plans(rollout_path(config.data_dir))
            registry = _warmed(Registry.of(check_rulesets(config), config.detector_settings, pool, plans))
            audit = _open_audit(config, on_health)
        except RolloutError as exc:
            pool.shutdown(wait=False)
            raise StartError(str(exc)) from None
        except BaseException:
            pool.shutdown(wait=False)
            raise
        try:
            approvals = Approvals(open_approval_store(config), audit, config.approvals.keep_days * 86_400)
        except ApprovalUnavailable as exc:
            audit.close()
            pool.shutdown(wait=False)
            raise StartError(f"approvals: {exc}") from None
        guard = cls(registry, audit, approvals, default_timeout_s=config.default_timeout_ms / 1000 or None)
        guard._owned.append(pool)
        try:
            guard.registry = guard.released(registry, config.rulesets)
        except StartError:
            guard.close()
            raise
        return guard

    def released(self, registry: Registry, rulesets: str) -> Registry:
        """``registry`` as it may answer under the approvals its gate files (beside ``rulesets``)
        require, at start and on every reload: the rule `palisade rollout` applies to a change
        (engine/approvals/release.py), applied to whatever plan is loaded (a hand edit of rollout.json
        included). StartError when a plan makes an unapproved version answer, active or canary, or
        none of a ruleset's versions may. Where a plan names no active version, the highest that may
        answer does; the versions above it are loaded (pinned, shadow) but await an approval."""
        graphs = {key: evaluator.graph for key, evaluator in registry.by_key.items()}
        try:
            records = self.audit.reader()
        except AuditError as exc:
            raise StartError(f"rollout: cannot read the audit log to check approvals: {exc}") from None
        try:
            check_released(registry.plans, graphs, rulesets, self.approvals.latest, records)
            found = releases(registry.plans, graphs, rulesets, self.approvals.latest, records)
        except (Unapproved, AuditError, ApprovalUnavailable) as exc:
            raise StartError(str(exc)) from None
        finally:
            records.close()
        answering: dict[str, Graph] = {}
        for name, release in found.items():
            if release.answers is None:
                raise StartError(release.refusal())
            answering[name] = release.answers
        for name, graph in answering.items():
            self._release(registry.plans.get(name, Plan()), found[name], graph)
        return registry.answering({name: graph.version for name, graph in answering.items()})

    def _release(self, plan: Plan, release: Release, graph: Graph) -> None:
        """Record ``graph``, a first version, going live (its record vouches for it from then on), and
        log the versions that await an approval."""
        if release.first:
            comment = "the first version of a ruleset that requires approvals: the only one loaded"
            entry = rollout_entry(
                "activate",
                release.name,
                plan,
                version=graph.version,
                content_hash=graph.content_hash,
                actor=SERVER_ACTOR,
                comment=comment,
            )
            try:
                self.audit.submit(entry)
            except AuditError as exc:
                raise StartError(
                    f"rollout: cannot record {release.name} {graph.version} going live: {exc}"
                ) from None
        for waiting in release.awaiting:
            log.warning(
                "rollout: %s %s (content %s) is loaded but awaits an approval before it may answer"
                " (palisade rollout request, then palisade approvals approve); %s answers",
                release.name,
                waiting.version,
                waiting.content_hash,
                graph.version,
            )

    @property
    def detector_pool(self) -> ThreadPoolExecutor | None:
        """The pool this Guard's detectors run in (None when given a registry built elsewhere)."""
        return self._owned[0] if self._owned else None

    @property
    def healthy(self) -> bool:
        """False while the audit log cannot take records (no record, no service)."""
        return self.audit.healthy

    def check(
        self,
        ruleset: str,
        request: Request,
        *,
        version: str = "",
        timeout_s: float | None = None,
        decided: Callable[[], None] | None = None,
    ) -> Checked:
        """Decide ``request`` by ``ruleset`` (``version`` pinned, or the active one) within
        ``timeout_s`` (None: the default timeout). ``decided`` is called once the decision is made
        and only the wait for its audit record's commit remains, with sync durability (a server's
        admission control then lets the next call work). Raises runtime.registry.UnknownRuleset."""
        with self.shadows.traffic:  # in flight: the shadow thread waits for a moment without Checks
            return self._check(ruleset, request, version, timeout_s, decided)

    def _check(
        self,
        ruleset: str,
        request: Request,
        version: str,
        timeout_s: float | None,
        decided: Callable[[], None] | None,
    ) -> Checked:
        started = time.perf_counter()
        registry = self.registry
        evaluator, role = registry.route(ruleset, version, request.principal)
        decision_id = new_id()
        timeout = self.default_timeout_s if timeout_s is None else timeout_s
        evaluated = evaluator.evaluate(request, timeout_s=timeout)
        gated = self._gated(evaluator, evaluated, request, decision_id, started)
        rollout, shadow = _rollout(registry, ruleset, role, evaluator)
        recording = time.perf_counter()
        decision = self._recorded(
            evaluator, gated.decision, request, decision_id, started, decided=decided, rollout=rollout
        )
        observer().checked(
            request.stage, evaluated, decision, decision_id=decision_id, started=started, recording=recording
        )
        if shadow is not None:
            self.shadows.offer(shadow, request, evaluated, decision_id, evaluator.graph.budget_p95_us)
        return Checked(decision, decision_id, evaluator.graph.default, gated.approval)

    def _record_shadow(self, job: ShadowJob, shadow: Decision) -> None:
        """Record a shadow evaluation (a record of its own, citing the decision); never an answer."""
        try:
            self.audit.submit(shadow_entry(job, shadow))
        except AuditError as exc:
            log.debug("shadow of decision %s not recorded: %s", job.decision_id, exc)

    def _gated(
        self, evaluator: Evaluator, decision: Decision, request: Request, decision_id: str, started: float
    ) -> Gated:
        """The answer after approvals (opened, rejoined or resumed); fails closed when they cannot be kept."""
        try:
            return self._gate.apply(decision, request, decision_id)
        except (ApprovalError, AuditUnavailable) as exc:
            # an audit outage is logged by the audit writer, once; other approval failures here
            level = logging.DEBUG if isinstance(exc, AuditUnavailable) else logging.ERROR
            log.log(level, "decision %s: approvals unavailable: %s", decision_id, exc)
            message = "approvals cannot be kept now; the decision falls back to the error policy"
            return Gated(
                evaluator.error_decision("approvals_unavailable", message, started, never_allow=True)
            )

    def _recorded(
        self,
        evaluator: Evaluator,
        decision: Decision,
        request: Request,
        decision_id: str,
        started: float,
        *,
        decided: Callable[[], None] | None,
        rollout: dict[str, object] | None = None,
    ) -> Decision:
        """``decision`` once its audit record is appended (with the masked excerpt the ruleset asks
        for); the error policy, never ALLOW, when the record cannot be made durable."""
        excerpt = evaluator.excerpter.excerpt(request) if evaluator.excerpter is not None else None
        # Only a sync commit is a wait worth giving the slot on for: journal and async appends are
        # CPU work (the record built, digested, written) that the slot is there to bound.
        if decided is not None and self.audit.config.durability == "sync":
            decided()
        try:
            self.audit.append(decision, request, decision_id, excerpt=excerpt, rollout=rollout)
        except AuditUnavailable as exc:
            log.debug("decision %s not recorded: %s", decision_id, exc)  # the writer logs the outage once
            message = "the audit log cannot be written; the decision was not recorded"
            return evaluator.error_decision("audit_unavailable", message, started, never_allow=True)
        return decision

    def close(self) -> None:
        """Write what the audit log holds, sign its final checkpoint, release the stores and threads."""
        self.shadows.close()  # first: the queued shadows' records go into the log before it closes
        self.audit.close()
        self.approvals.store.close()
        for pool in self._owned:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Guard:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _rollout(
    registry: Registry, ruleset: str, role: Role, evaluator: Evaluator
) -> tuple[dict[str, object] | None, Evaluator | None]:
    """What a Check's record says of its ruleset's rollout (None: no plan), and the shadow version to
    evaluate the Check with (None: none, or the one that answered)."""
    plan, shadow = registry.plans.get(ruleset), registry.shadow(ruleset)
    if role is Role.PINNED or shadow is evaluator:
        shadow = None
    shadowed = "" if shadow is None else shadow.graph.version
    return (None if plan is None else rollout_field(plan, role, shadowed)), shadow


def _warmed(registry: Registry) -> Registry:
    """``registry`` once every detector of it is warm (Registry.warm); StartError if one cannot be."""
    started = time.perf_counter()
    try:
        registry.warm()
    except DetectorError as exc:
        raise StartError(f"rulesets: {exc}") from None
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.info("warmed the detectors of %d ruleset(s) in %.0f ms", len(registry.by_key), elapsed_ms)
    return registry


def _open_audit(config: ServeConfig, on_health: HealthListener | None) -> AuditLog:
    try:
        return AuditLog.open(config.data_dir, config.audit, on_health=on_health, store_url=config.store.url)
    except AuditUnavailable as exc:
        raise StartError(f"audit: {exc}") from None


def open_approval_store(config: ServeConfig) -> ApprovalStore:
    """The approvals in the data directory, or in the PostgreSQL database of ``[store] url``."""
    if config.store.url:
        return PgApprovalStore.connect(config.store.url)
    return ApprovalStore.open(config.data_dir)
