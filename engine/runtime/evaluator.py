"""The evaluator: runs a linked decision graph on a request and resolves the decision. Never raises."""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from detectors.base import (
    DEADLINE,
    WARM_TEXT,
    DeadlineExceeded,
    Detector,
    DetectorError,
    DetectorResult,
    Finding,
    ModelVersion,
    models_of,
    run_by,
    warm_up,
)
from detectors.specs import SPECS, CostClass, DetectorSettings
from dsl import ir
from dsl.graph import DEFAULT_ON_ERROR
from dsl.types import STRING, Outcome, Stage
from engine.runtime.decision import Decision, DetectorReport, EvalError, RuleMatch
from engine.runtime.detector_cache import CachedScan, DetectorCache, ScanStats, detector_key, shared_cache
from engine.runtime.emitter import RuleFn, SegmentFn, link_rules, segments
from engine.runtime.excerpts import Excerpter
from engine.runtime.linker import Env, EvalFailure, Fn, link, to_text
from engine.runtime.redaction import Pseudonymizer, redact
from engine.runtime.request import Message, Request

T = TypeVar("T")


def _fast_new(cls: type[T]) -> Callable[..., T]:
    """``cls`` itself, or a function with its signature that builds the same object faster.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, which costs
    about 0.1 us a field; on the per-request path (Decision, DetectorReport) that adds up. For a
    frozen, slotted dataclass with a plain ``__init__`` (no ``__post_init__``, no init-only or
    keyword-only fields), the generated function sets each slot through its descriptor instead.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in fields]
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    plain = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)
    slots = set(getattr(cls, "__slots__", ()))
    if hasattr(cls, "__post_init__") or not plain or [p.name for p in parameters] != names:
        return cls
    if not set(names) <= slots:
        return cls
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_MISSING": dataclasses.MISSING}
    signature, body = [], []
    for i, f in enumerate(fields):
        namespace[f"_set{i}"] = cls.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default{i}"] = f.default
            signature.append(f"{f.name}=_default{i}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory{i}"] = f.default_factory
            signature.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING:\n        {f.name} = _factory{i}()")
        else:
            signature.append(f.name)
        body.append(f"    _set{i}(self, {f.name})")
    head = f"def new({', '.join(signature)}):\n    self = _new(_cls)\n"
    source = head + "\n".join(body) + "\n    return self"
    exec(compile(source, f"<fast {cls.__name__}>", "exec"), namespace)
    new: Callable[..., T] = namespace["new"]
    return new


_new_decision = _fast_new(Decision)
_new_report = _fast_new(DetectorReport)


@dataclass(frozen=True, slots=True)
class _Rule:
    node: ir.RuleNode
    arms: tuple[ir.ArmNode, ...]
    fn: RuleFn  # the index of the first arm that matches, or -1 (engine.runtime.emitter.link_rules)
    detectors: frozenset[str]
    heavy: frozenset[str]
    max_outcome: Outcome  # node.max_outcome, computed once


@dataclass(frozen=True, slots=True)
class _Segment:
    """Consecutive rules that use no detector, run by one generated function (emitter.segments)."""

    rules: tuple[_Rule, ...]
    fn: SegmentFn


# What a stage runs, in order: each rule's position among the stage's rules, and the rule or the
# segment of rules that starts there.
_Steps = tuple[tuple[int, "_Rule | _Segment"], ...]


@dataclass(frozen=True, slots=True)
class _DetectorRun:
    node: ir.DetectorNode
    input: Fn
    detector: Detector
    kind: str = ""  # node.kind, for the report
    # MODERATE and HEAVY detectors go through the cross-request cache under this key ("": never),
    # a chat's messages one by one (DetectorSpec.split)
    cache_key: str = ""
    split: str = "whole"
    on_content: bool = False  # scans `content`, which joins the messages when there is no `text`
    models: tuple[ModelVersion, ...] = ()  # the models its findings come from, for the report


class Evaluator:
    """A compiled ruleset linked to live detectors. Thread-safe; one per ruleset version."""

    def __init__(
        self,
        graph: ir.Graph,
        settings: DetectorSettings | None = None,
        pool: ThreadPoolExecutor | None = None,
        cache: DetectorCache | None = None,
    ) -> None:
        self.graph = graph
        self.settings = settings or DetectorSettings()
        self.pool = pool
        self.cache = cache if cache is not None else shared_cache(self.settings.cache_bytes)
        self.pseudonym = Pseudonymizer(self.settings.pseudonym_key)
        # `audit excerpts N`: masks the request's texts for its audit record (None: no excerpts)
        self.excerpter = Excerpter.for_graph(graph, self.settings, self.cache)
        self.rule_nodes = {rule.name: rule for rule in graph.rules}
        self.rule_order = {rule.name: position for position, rule in enumerate(graph.rules)}
        regexes: dict[str, object] = {}
        self.detector_runs = {
            node_id: _detector_run(node, link(node.input, regexes), self.settings)
            for node_id, node in graph.detectors.items()
        }
        heavy = {n for n, node in graph.detectors.items() if node.cost_class >= CostClass.MODERATE}
        # detectors called on a quantifier's variable scan one text per item: memoised per text
        self.per_item = frozenset(
            n
            for n, node in graph.detectors.items()
            if any(isinstance(e, ir.Var) for e in ir.walk(node.input))
        )
        fns = link_rules([[arm.condition for arm in rule.arms] for rule in graph.rules], regexes)
        rules = [self._link_rule(rule, fn, heavy) for rule, fn in zip(graph.rules, fns, strict=True)]
        rules.sort(key=self._rule_cost)
        self._by_stage = {stage: tuple(r for r in rules if stage in r.node.stages) for stage in Stage}
        self._steps = {stage: _steps(self._by_stage[stage], regexes) for stage in Stage}

    def _link_rule(self, rule: ir.RuleNode, fn: RuleFn, heavy: set[str]) -> _Rule:
        used = frozenset().union(*(arm.detectors for arm in rule.arms))
        return _Rule(rule, rule.arms, fn, used, used & heavy, rule.max_outcome)

    def _rule_cost(self, rule: _Rule) -> tuple[int, int]:
        classes = [self.graph.detectors[n].cost_class for n in rule.detectors]
        return max(classes, default=0), sum(self.graph.detectors[n].cost_us for n in rule.detectors)

    def warm(self) -> None:
        """Load and exercise every detector (one short text each: detectors.base.warm_up) and the audit
        excerpts' masking, so that no Check loads anything. Raises DetectorError naming the ruleset and
        the detector when one fails: a detector that cannot warm up is not fit to serve."""
        where = f"ruleset {self.graph.name} {self.graph.version}"
        for node_id, run in self.detector_runs.items():
            try:
                warm_up(run.detector)
            except Exception as exc:  # its own DetectorError, or its library's errors
                name = ", ".join(run.node.decls) or node_id  # as declared, not as called
                message = f"{where}: detector {name} ({run.kind}) failed its warm-up: {exc}"
                raise DetectorError(message) from exc
        error = self.excerpter.excerpt(Request(Stage.INPUT, text=WARM_TEXT)).error if self.excerpter else ""
        if error:
            raise DetectorError(f"{where}: audit excerpts failed their warm-up: {error}")

    def evaluate(self, request: Request, timeout_s: float | None = None) -> Decision:
        """Decide ``request``. Detector failures and deadline misses go through the error policy: every
        detector call, inline or prefetched, and every regex search stops at the deadline
        (detectors.base.DEADLINE), and an evaluation that ends past it is the error policy's."""
        started = time.perf_counter()
        deadline = started + timeout_s if timeout_s is not None else None
        run = _Run(self, request, deadline)
        # run_by, inline (every Check takes this path): this thread's detectors and regexes see the deadline
        token = DEADLINE.set(deadline) if deadline is not None else None
        try:
            matches, skipped = run.rules(request.stage)
            return run.decide(matches, skipped, started)
        except Exception as exc:  # a bug of ours must not reach the caller: fail by the error policy
            message = f"evaluation failed: {type(exc).__name__}"
            return self.error_decision("internal_error", message, started)
        finally:
            if token is not None:
                DEADLINE.reset(token)
            run.cancel_pending()
            run.env.detect = _finished  # env -> run.detect -> run -> env: break the cycle, so that
            # the run is freed at once rather than by the garbage collector (which costs every call)

    def error_decision(
        self, code: str, message: str, started: float, *, never_allow: bool = False
    ) -> Decision:
        """The decision when no trustworthy one exists: the ruleset's error policy. With
        ``never_allow`` (the decision could not be recorded) an ALLOW policy becomes BLOCK."""
        policy = self.graph.on_error
        if never_allow and policy.outcome is Outcome.ALLOW:
            policy = DEFAULT_ON_ERROR
        error = EvalError("evaluator", code, message)
        match = RuleMatch(EVALUATOR_RULE, -1, policy, policy.reason or message, from_error=True)
        return Decision(
            outcome=policy.outcome,
            ruleset=self.graph.name,
            version=self.graph.version,
            content_hash=self.graph.content_hash,
            matches=(match,) if policy.outcome is not Outcome.ALLOW else (),
            errors=(error,),
            duration_us=(time.perf_counter() - started) * 1e6,
        )


def _finished(node_id: str) -> DetectorResult:
    raise EvalFailure(node_id, "detector_error", f"{node_id}: called after its evaluation ended")


def _steps(rules: tuple[_Rule, ...], regexes: dict[str, object]) -> _Steps:
    """Runs of two or more rules without detectors become segments; the other rules stay as they are."""
    steps: list[tuple[int, _Rule | _Segment]] = []
    position = 0
    while position < len(rules):
        end = position
        while end < len(rules) and not rules[end].detectors:
            end += 1
        if end - position < 2:
            steps.append((position, rules[position]))
            position += 1
            continue
        run = rules[position:end]
        linked = segments([[arm.condition for arm in r.arms] for r in run], regexes)
        for (start, fn), (stop, _) in zip(linked, [*linked[1:], (len(run), None)], strict=True):
            steps.append((position + start, _Segment(run[start:stop], fn)))
        position = end
    return tuple(steps)


def _instantiate(node: ir.DetectorNode, settings: DetectorSettings) -> Detector:
    spec = SPECS[node.kind]
    return spec.load()(spec.params.model_validate(node.params), settings)


_CONTENT = ir.Field(("content",), STRING)


def _detector_run(node: ir.DetectorNode, input_fn: Fn, settings: DetectorSettings) -> _DetectorRun:
    cached = node.cost_class >= CostClass.MODERATE
    key = detector_key(node.kind, node.params, settings.pii_nlp_model or "") if cached else ""
    split = SPECS[node.kind].split
    detector = _instantiate(node, settings)
    on_content = node.input == _CONTENT
    return _DetectorRun(node, input_fn, detector, node.kind, key, split, on_content, models_of(detector))


DEFAULT_RULE = "(default)"  # the name an error shows when the default's redaction failed
EVALUATOR_RULE = "(evaluator)"  # the name of the error policy's match when the evaluation as a whole failed


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
        self.scans: dict[str, ScanStats] = {}  # cache hits and misses of the last call of each node

    # detectors

    def detect(self, node_id: str) -> DetectorResult:
        key = node_id
        if node_id in self.ev.per_item:
            key = f"{node_id}\0{to_text(self.ev.detector_runs[node_id].input(self.env))}"
        result = self.results.get(key)
        if result is None:
            result = self.results[key] = self._compute(node_id)
        if isinstance(result, EvalFailure):
            raise result
        return result

    def _compute(self, node_id: str) -> DetectorResult | EvalFailure:
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return EvalFailure(node_id, "deadline_exceeded", f"{node_id}: deadline passed before it ran")
        future = self.futures.pop(node_id, None) if self.futures else None
        started = time.perf_counter()
        try:
            result = future.result(self._remaining()) if future else self._call(node_id)
        except (FutureTimeout, DeadlineExceeded):  # the wait for it, or its work, stopped at the deadline
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
        text = run.input(self.env)
        if not run.cache_key or self.ev.cache is None:
            return run.detector.detect(text if type(text) is str else to_text(text))
        scan = CachedScan(run.detector.detect, run.cache_key, self.ev.cache)
        result = scan.parts(self._parts(run, text), run.split)
        self.scans[node_id] = scan.stats
        return result

    def _parts(self, run: _DetectorRun, value: Any) -> list[str]:
        """The texts a value is made of: the messages of a chat (of `content` without `text`, or of
        a list), the items of a list, or the one text."""
        request = self.env.request
        if type(value) is str:
            if run.on_content and not request.text and len(request.messages) > 1:
                return [m.content for m in request.messages]
            return [value]
        if isinstance(value, list | tuple):
            return [v.content if isinstance(v, Message) else to_text(v) for v in value]
        return [to_text(value)]

    def _remaining(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.perf_counter(), 0.0)

    def _report(self, node_id: str, findings: tuple[Finding, ...], started: float, error: str = "") -> None:
        elapsed = (time.perf_counter() - started) * 1e6
        run = self.ev.detector_runs[node_id]
        kind, models = run.kind, run.models
        scan = self.scans.pop(node_id, None) if self.scans else None
        if scan is None:
            self.reports.append(
                _new_report(node_id, kind, findings, elapsed, error, models=models, started_s=started)
            )
            return
        cached = scan.hits > 0 and scan.misses == 0
        hits, misses = scan.hits, scan.misses
        report = _new_report(node_id, kind, findings, elapsed, error, cached, hits, misses, models, started)
        self.reports.append(report)

    def prefetch(self, rules: tuple[_Rule, ...]) -> None:
        """Start the expensive detectors that the rules still to run need, concurrently."""
        pool = self.ev.pool
        wanted = {
            n
            for r in rules
            for n in r.heavy
            if n not in self.results and n not in self.futures and n not in self.ev.per_item
        }
        if pool is None or len(wanted) < 2:
            return
        for node_id in sorted(wanted):  # under the request's deadline in the pool's thread too
            self.futures[node_id] = pool.submit(run_by, self.deadline, self._call, node_id)

    def cancel_pending(self) -> None:
        for future in self.futures.values():
            future.cancel()

    # rules

    def rules(self, stage: Stage) -> tuple[list[RuleMatch], list[str]]:
        rules = self.ev._by_stage[stage]
        matches: list[RuleMatch] = []
        skipped: list[str] = []
        best = Outcome.ALLOW
        prefetched = False
        env, results = self.env, self.results
        for position, step in self.ev._steps[stage]:
            if isinstance(step, _Segment):  # rules without detectors: all run, in order, in one call
                for offset, hit in step.fn(env):
                    rule = step.rules[offset]
                    if isinstance(hit, EvalFailure):
                        match = self._on_error(rule.node, hit)
                    else:
                        arm = rule.arms[hit]
                        reason = arm.action.reason or f"rule {rule.node.name} matched"
                        match = RuleMatch(rule.node.name, arm.index, arm.action, reason)
                    if match is not None:
                        matches.append(match)
                        best = max(best, match.action.outcome)
                continue
            rule = step
            if rule.detectors:  # rules without detectors always run: nothing to skip or prefetch
                # skipped only if it cannot change the outcome; ties matter (they are all reported,
                # and tied redactions all apply) except once a BLOCK matched; under an ESCALATE the
                # FALLBACK rules run too, since an approval answers only the escalation
                floor = Outcome.FALLBACK if best is Outcome.ESCALATE else best
                cannot_change = rule.max_outcome < floor or best is Outcome.BLOCK
                if matches and cannot_change and any(n not in results for n in rule.detectors):
                    skipped.append(rule.node.name)
                    continue
                if rule.heavy and not prefetched:
                    self.prefetch(rules[position:])
                    prefetched = True
            try:
                index = rule.fn(env)  # the first arm that matches decides for its rule
            except EvalFailure as failure:
                match = self._on_error(rule.node, failure)
            else:
                if index < 0:
                    continue
                arm = rule.arms[index]
                reason = arm.action.reason or f"rule {rule.node.name} matched"
                match = RuleMatch(rule.node.name, arm.index, arm.action, reason)
            if match is not None:
                matches.append(match)
                best = max(best, match.action.outcome)
        return matches, skipped

    def _on_error(self, rule: ir.RuleNode, failure: EvalFailure) -> RuleMatch | None:
        return self._apply_policy(rule.name, rule.on_error, failure)

    def _apply_policy(self, name: str, policy: ir.ActionNode, failure: EvalFailure) -> RuleMatch | None:
        self.errors.append(EvalError(failure.source, failure.code, failure.message, name))
        if policy.outcome is Outcome.ALLOW:
            return None
        reason = policy.reason or f"error policy: {failure.message}"
        return RuleMatch(name, -1, policy, reason, from_error=True)

    # resolution

    def decide(self, matches: list[RuleMatch], skipped: list[str], started: float) -> Decision:
        graph = self.ev.graph
        matches.sort(key=lambda m: self.ev.rule_order.get(m.rule, -1))  # source order, not cost order
        outcome = max(m.outcome for m in matches) if matches else graph.default.outcome
        redacted = if_approved = None
        if outcome is Outcome.FALLBACK:
            redacted, matches = self._redact(matches)
            outcome = max((m.outcome for m in matches), default=graph.default.outcome)
        elif outcome is Outcome.ESCALATE and any(m.outcome is Outcome.FALLBACK for m in matches):
            if_approved, matches = self._redact(matches)
            outcome = max(m.outcome for m in matches)
        ended = time.perf_counter()
        if self.deadline is not None and ended >= self.deadline:
            matches = self._past_deadline(matches)
            outcome = max((m.outcome for m in matches), default=graph.default.outcome)
            redacted = redacted if outcome is Outcome.FALLBACK else None
        return _new_decision(
            outcome=outcome,
            ruleset=graph.name,
            version=graph.version,
            content_hash=graph.content_hash,
            matches=tuple(matches),
            detectors=tuple(self.reports),
            errors=tuple(self.errors),
            skipped_rules=tuple(skipped),
            redacted=redacted,
            redacted_if_approved=if_approved if outcome is Outcome.ESCALATE else None,
            default_applied=not matches,
            default_action=graph.default,
            duration_us=(ended - started) * 1e6,
            timings_us={r.node: r.duration_us for r in self.reports} if self.reports else {},
        )

    def _past_deadline(self, matches: list[RuleMatch]) -> list[RuleMatch]:
        """The matches of an evaluation that ended past its deadline: with the ruleset's error policy
        (and its deadline_exceeded error), unless a part of it that missed the deadline already went
        through an error policy."""
        if any(e.code == "deadline_exceeded" for e in self.errors):
            return matches
        failure = EvalFailure("evaluator", "deadline_exceeded", "the evaluation ended after its deadline")
        match = self._apply_policy(EVALUATOR_RULE, self.ev.graph.on_error, failure)
        return [match, *matches] if match is not None else matches

    def _redact(self, matches: list[RuleMatch]) -> tuple[str | None, list[RuleMatch]]:
        """Apply every deciding redaction; a failed redaction detector goes to its error policy."""
        nodes = [n for m in matches if m.outcome is Outcome.FALLBACK for n in m.action.redact]
        if not matches:  # the default decided: `default fallback redact NAMES`
            nodes = list(self.ev.graph.default.redact)
        if not nodes:
            return None, matches
        findings: list[Finding] = []
        keyed: set[Finding] = set()
        pseudonymized = {n for m in matches if m.action.pseudonymize for n in m.action.redact}
        if not matches and self.ev.graph.default.pseudonymize:
            pseudonymized = set(nodes)
        for node_id in dict.fromkeys(nodes):
            try:
                found = self.detect(node_id).findings
                findings.extend(found)
                if node_id in pseudonymized:
                    keyed.update(found)
            except EvalFailure as failure:
                rule = next((m.rule for m in matches if node_id in m.action.redact), None)
                if rule is None:  # the default's redaction: the ruleset's error policy
                    error_match = self._apply_policy(DEFAULT_RULE, self.ev.graph.on_error, failure)
                else:
                    error_match = self._on_error(self.ev.rule_nodes[rule], failure)
                return None, [*matches, *([error_match] if error_match else [])]
        return redact(self.env.content, findings, self.ev.pseudonym, keyed), matches


__all__ = ["DEFAULT_RULE", "Evaluator", "redact"]  # redact lives in engine.runtime.redaction
