"""The evaluator: runs a linked decision graph on a request and resolves the decision. Never raises."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from detectors.base import Detector, DetectorError, DetectorResult, Finding
from detectors.specs import SPECS, CostClass, DetectorSettings
from dsl import ir
from dsl.types import Outcome, Stage
from engine.decision import Decision, DetectorReport, EvalError, RuleMatch
from engine.plan import Env, EvalFailure, Fn, link, to_text
from engine.request import Request


@dataclass(frozen=True, slots=True)
class _Arm:
    node: ir.ArmNode
    fn: Fn


@dataclass(frozen=True, slots=True)
class _Rule:
    node: ir.RuleNode
    arms: tuple[_Arm, ...]
    detectors: frozenset[str]
    heavy: frozenset[str]


@dataclass(frozen=True, slots=True)
class _DetectorRun:
    node: ir.DetectorNode
    input: Fn
    detector: Detector


class Evaluator:
    """A compiled ruleset linked to live detectors. Thread-safe; one per ruleset version."""

    def __init__(
        self,
        graph: ir.Graph,
        settings: DetectorSettings | None = None,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.graph = graph
        self.settings = settings or DetectorSettings()
        self.pool = pool
        self.rule_nodes = {rule.name: rule for rule in graph.rules}
        regexes: dict[str, object] = {}
        self.detector_runs = {
            node_id: _DetectorRun(node, link(node.input, regexes), _instantiate(node, self.settings))
            for node_id, node in graph.detectors.items()
        }
        heavy = {n for n, node in graph.detectors.items() if node.cost_class >= CostClass.MODERATE}
        rules = [self._link_rule(rule, heavy, regexes) for rule in graph.rules]
        rules.sort(key=self._rule_cost)
        self._by_stage = {stage: tuple(r for r in rules if stage in r.node.stages) for stage in Stage}

    def _link_rule(self, rule: ir.RuleNode, heavy: set[str], regexes: dict[str, object]) -> _Rule:
        arms = tuple(_Arm(arm, link(arm.condition, regexes)) for arm in rule.arms)
        used = frozenset().union(*(arm.detectors for arm in rule.arms))
        return _Rule(rule, arms, used, used & heavy)

    def _rule_cost(self, rule: _Rule) -> tuple[int, int]:
        classes = [self.graph.detectors[n].cost_class for n in rule.detectors]
        return max(classes, default=0), sum(self.graph.detectors[n].cost_us for n in rule.detectors)

    def evaluate(self, request: Request, timeout_s: float | None = None) -> Decision:
        """Decide ``request``. Detector failures and deadline misses go through the error policy."""
        started = time.perf_counter()
        deadline = started + timeout_s if timeout_s is not None else None
        run = _Run(self, request, deadline)
        try:
            matches, skipped = run.rules(self._by_stage[request.stage])
            return run.decide(matches, skipped, started)
        finally:
            run.cancel_pending()


def _instantiate(node: ir.DetectorNode, settings: DetectorSettings) -> Detector:
    spec = SPECS[node.kind]
    return spec.load()(spec.params.model_validate(node.params), settings)


class _Run:
    """One evaluation: memoised detector results, matches, errors."""

    def __init__(self, evaluator: Evaluator, request: Request, deadline: float | None) -> None:
        self.ev = evaluator
        self.deadline = deadline
        self.env = Env(request, self.detect, evaluator.settings.regex_timeout_s)
        self.results: dict[str, DetectorResult | EvalFailure] = {}
        self.futures: dict[str, Future[DetectorResult]] = {}
        self.reports: list[DetectorReport] = []
        self.errors: list[EvalError] = []

    # detectors

    def detect(self, node_id: str) -> DetectorResult:
        result = self.results.get(node_id)
        if result is None:
            result = self.results[node_id] = self._compute(node_id)
        if isinstance(result, EvalFailure):
            raise result
        return result

    def _compute(self, node_id: str) -> DetectorResult | EvalFailure:
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return EvalFailure(node_id, "deadline_exceeded", f"{node_id}: deadline passed before it ran")
        future = self.futures.pop(node_id, None)
        started = time.perf_counter()
        try:
            result = future.result(self._remaining()) if future else self._call(node_id)
        except FutureTimeout:
            failure = EvalFailure(node_id, "deadline_exceeded", f"{node_id}: missed the deadline")
        except DetectorError as exc:
            failure = EvalFailure(node_id, "detector_error", f"{node_id}: {exc}")
        except Exception as exc:  # a detector bug must not escape: fail by the error policy
            failure = EvalFailure(node_id, "detector_error", f"{node_id}: {type(exc).__name__}")
        else:
            self._report(node_id, result.findings, started)
            return result
        self._report(node_id, (), started, failure.message)
        return failure

    def _call(self, node_id: str) -> DetectorResult:
        run = self.ev.detector_runs[node_id]
        return run.detector.detect(to_text(run.input(self.env)))

    def _remaining(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.perf_counter(), 0.0)

    def _report(self, node_id: str, findings: tuple[Finding, ...], started: float, error: str = "") -> None:
        elapsed = (time.perf_counter() - started) * 1e6
        kind = self.ev.graph.detectors[node_id].kind
        self.reports.append(DetectorReport(node_id, kind, findings, elapsed, error))

    def prefetch(self, rules: tuple[_Rule, ...]) -> None:
        """Start the expensive detectors that the rules still to run need, concurrently."""
        pool = self.ev.pool
        wanted = {n for r in rules for n in r.heavy if n not in self.results and n not in self.futures}
        if pool is None or len(wanted) < 2:
            return
        for node_id in sorted(wanted):
            self.futures[node_id] = pool.submit(self._call, node_id)

    def cancel_pending(self) -> None:
        for future in self.futures.values():
            future.cancel()

    # rules

    def rules(self, rules: tuple[_Rule, ...]) -> tuple[list[RuleMatch], list[str]]:
        matches: list[RuleMatch] = []
        skipped: list[str] = []
        best = Outcome.ALLOW
        prefetched = False
        for position, rule in enumerate(rules):
            needs_new = any(n not in self.results for n in rule.detectors)
            if matches and needs_new and rule.node.max_outcome <= best:
                skipped.append(rule.node.name)
                continue
            if rule.heavy and not prefetched:
                self.prefetch(rules[position:])
                prefetched = True
            match = self._rule(rule)
            if match is not None:
                matches.append(match)
                best = max(best, match.outcome)
        return matches, skipped

    def _rule(self, rule: _Rule) -> RuleMatch | None:
        for arm in rule.arms:
            try:
                matched = arm.fn(self.env)
            except EvalFailure as failure:
                return self._on_error(rule.node, failure)
            if matched:
                action = arm.node.action
                reason = action.reason or f"rule {rule.node.name} matched"
                return RuleMatch(rule.node.name, arm.node.index, action, reason)
        return None

    def _on_error(self, rule: ir.RuleNode, failure: EvalFailure) -> RuleMatch | None:
        self.errors.append(EvalError(failure.source, failure.code, failure.message, rule.name))
        policy = rule.on_error
        if policy.outcome is Outcome.ALLOW:
            return None
        reason = policy.reason or f"error policy: {failure.message}"
        return RuleMatch(rule.name, -1, policy, reason, from_error=True)

    # resolution

    def decide(self, matches: list[RuleMatch], skipped: list[str], started: float) -> Decision:
        graph = self.ev.graph
        outcome = max((m.outcome for m in matches), default=graph.default.outcome)
        redacted = None
        if outcome is Outcome.FALLBACK:
            redacted, matches = self._redact(matches)
            outcome = max((m.outcome for m in matches), default=graph.default.outcome)
        return Decision(
            outcome=outcome,
            ruleset=graph.name,
            version=graph.version,
            content_hash=graph.content_hash,
            matches=tuple(matches),
            detectors=tuple(self.reports),
            errors=tuple(self.errors),
            skipped_rules=tuple(skipped),
            redacted=redacted,
            default_applied=not matches,
            duration_us=(time.perf_counter() - started) * 1e6,
            timings_us={r.node: r.duration_us for r in self.reports},
        )

    def _redact(self, matches: list[RuleMatch]) -> tuple[str | None, list[RuleMatch]]:
        """Apply every deciding redaction; a failed redaction detector goes to its error policy."""
        nodes = [n for m in matches if m.outcome is Outcome.FALLBACK for n in m.action.redact]
        if not nodes:
            return None, matches
        findings: list[Finding] = []
        for node_id in dict.fromkeys(nodes):
            try:
                findings.extend(self.detect(node_id).findings)
            except EvalFailure as failure:
                rule = next(m.rule for m in matches if node_id in m.action.redact)
                error_match = self._on_error(self.ev.rule_nodes[rule], failure)
                return None, [*matches, *([error_match] if error_match else [])]
        return redact(self.env.content, findings), matches


def redact(text: str, findings: list[Finding]) -> str:
    """Replace each finding's span with ``<TYPE>``; overlapping spans merge into one placeholder."""
    spans = sorted((f.start, f.end, f.type) for f in findings if 0 <= f.start < f.end <= len(text))
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in spans:
        if merged and start < merged[-1][1]:
            first, last, first_kind = merged[-1]
            merged[-1] = (first, max(last, end), first_kind)
        else:
            merged.append((start, end, kind))
    out, cursor = [], 0
    for start, end, kind in merged:
        out.append(text[cursor:start])
        out.append(f"<{kind}>")
        cursor = end
    out.append(text[cursor:])
    return "".join(out)
