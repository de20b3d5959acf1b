"""What Guard, the audit writer, approvals and the server report to telemetry: a no-op unless installed."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TypeAlias

from dsl.ir import Graph
from dsl.types import Stage
from engine.runtime.decision import Decision

_NO_CONTEXT: AbstractContextManager[None] = nullcontext()
# A span's attributes: ids, names, states and counts, never a request's text or a person's name.
Attributes: TypeAlias = dict[str, str | int | bool]


class Observer:
    """Hears what the service does. This base class ignores it all, at the cost of a method call;
    engine.telemetry installs one that counts (Prometheus) and traces (OpenTelemetry).

    Every method is called on the thread that did the work and must not raise or block. Nothing
    passed here carries request text: the ids, names and numbers of a decision only."""

    def checked(
        self,
        stage: Stage,
        evaluated: Decision,
        decision: Decision,
        *,
        decision_id: str,
        started: float,
        recording: float,
    ) -> None:
        """A Check ended: ``evaluated`` is the evaluator's decision, ``decision`` the answer after
        approvals and the audit record; ``started`` and ``recording`` are time.perf_counter() at its
        start and when its audit append began."""

    def traced(self, headers: Iterable[tuple[str, str | bytes]]) -> AbstractContextManager[None]:
        """A context in which the Checks made are children of the W3C ``traceparent`` in ``headers``
        (gRPC metadata or HTTP headers, names in lower case); does nothing unless tracing is on."""
        return _NO_CONTEXT

    def span(
        self, name: str, attributes: Attributes, *, decision_id: str = ""
    ) -> AbstractContextManager[Attributes]:
        """A span ``name`` around the block, in the current trace (``traced``), or inside the Check
        ``decision_id`` when the block runs as part of that Check; the block may add attributes (its
        result) to the dict it is given. Does nothing unless tracing is on."""
        return nullcontext(attributes)

    def loaded(self, graphs: Iterable[Graph]) -> None:
        """The rulesets served now (at start and after each reload), which replace those before."""

    def audit_committed(self, records: int, seconds: float, queued: int) -> None:
        """The audit writer committed ``records`` in one transaction of ``seconds``; ``queued`` wait."""

    def serving(self, ok: bool) -> None:
        """The server's health: SERVING (True) or NOT_SERVING (False), reported on every change."""

    def approval(self, event: str, queue: str) -> None:
        """An approval of ``queue`` changed: opened, approved, denied, expired, cancelled, used, replay."""

    def answered(self, method: str, code: str) -> None:
        """A gRPC call to ``method`` ended with status ``code`` (OK included)."""

    def http_error(self, front_door: str, status: int) -> None:
        """An HTTP front door (envoy, litellm) refused with ``status`` a request it could not check."""


_installed: list[Observer] = [Observer()]


def observer() -> Observer:
    """The observer of this process (the no-op one unless engine.telemetry installed another)."""
    return _installed[0]


def install(new: Observer) -> Observer:
    """Make ``new`` this process's observer; returns the one it replaces."""
    old, _installed[0] = _installed[0], new
    return old
