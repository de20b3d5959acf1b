"""A typed Python client for the Guard and Approvals services: `GuardClient(target).check(...)` and so on."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import grpc

from dsl.types import Outcome, Stage
from engine.approvals import Approval, State
from engine.client.tls import ClientTls, tls_from_arguments
from engine.protocol.approvals_codec import STATES, approval_from_proto
from engine.protocol.request_codec import InvalidRequest, check_text, request_to_proto
from engine.protocol.wire import apb, apb_grpc, pb, pb_grpc
from engine.runtime.request import Message, Principal, Request, RequestError, ToolCall, request_from_dict

M = TypeVar("M")

_OUTCOMES: dict[int, Outcome] = {
    pb.OUTCOME_ALLOW: Outcome.ALLOW,
    pb.OUTCOME_BLOCK: Outcome.BLOCK,
    pb.OUTCOME_FALLBACK: Outcome.FALLBACK,
    pb.OUTCOME_ESCALATE: Outcome.ESCALATE,
}
_FALLBACK_KINDS: dict[int, str] = {
    pb.FALLBACK_KIND_REPLY: "reply",
    pb.FALLBACK_KIND_MODEL: "model",
    pb.FALLBACK_KIND_REDACT: "redact",
}
_INT32 = range(-(2**31), 2**31)


@dataclass(frozen=True, slots=True)
class MatchedRule:
    rule: str
    outcome: Outcome
    reason: str
    arm: int  # -1 when the rule's error policy applied
    from_error: bool
    deciding: bool


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A model that findings come from: ``sha256:<hex>`` of an ONNX file, or a package's version."""

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector finding: where (code point offsets in the scanned text), never what."""

    detector: str
    kind: str
    type: str
    score: float
    start: int
    end: int
    models: tuple[ModelVersion, ...] = ()  # for model-backed detectors (classifier, pii); else ()


@dataclass(frozen=True, slots=True)
class Fallback:
    kind: str  # reply | model | redact
    reply: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class Escalation:
    queue: str
    approval_id: str
    deadline: dt.datetime | None


@dataclass(frozen=True, slots=True)
class EvaluationError:
    source: str
    code: str
    message: str
    rule: str


@dataclass(frozen=True, slots=True)
class Timings:
    evaluation_us: float = 0.0
    server_us: float = 0.0
    detector_us: Mapping[str, float] = field(default_factory=dict)
    detector_cache_hits: int = 0  # texts whose detector result came from the cross-request cache
    detector_cache_misses: int = 0  # texts that cached detectors scanned (and then cached)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The service's decision on one Check."""

    outcome: Outcome
    decision_id: str
    ruleset: str
    version: str
    content_hash: str
    matches: tuple[MatchedRule, ...] = ()
    reasons: tuple[str, ...] = ()
    default_applied: bool = False
    findings: tuple[Finding, ...] = ()
    redacted: str | None = None
    fallback: Fallback | None = None
    escalation: Escalation | None = None
    errors: tuple[EvaluationError, ...] = ()
    timings: Timings = field(default_factory=Timings)
    request_id: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    @property
    def deciding_rules(self) -> tuple[str, ...]:
        return tuple(m.rule for m in self.matches if m.deciding)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: outcomes as labels, times as ISO 8601."""
        data: dict[str, Any] = _plain(asdict(self))
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, Outcome):
        return value.label
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class GuardError(Exception):
    """A call that failed: ``code`` is the gRPC status, ``details`` says what is wrong."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details = code, details


class InvalidArgument(GuardError):
    """The client refused to send the call: ``details`` names the field and what is wrong with it."""

    def __init__(self, details: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, details)


class GuardClient:
    """A connection to a Guard server. Thread-safe; reuse one for many calls; close when done."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float | None = 5.0,
        max_message_bytes: int = 8 << 20,
        tls: ClientTls | None = None,
    ) -> None:
        """Connect to ``target`` (HOST:PORT), over TLS when ``tls`` is given."""
        self.target = target
        self.timeout = timeout
        self._channel = open_channel(target, [("grpc.max_send_message_length", max_message_bytes)], tls)
        self._stub = pb_grpc.GuardStub(self._channel)
        self._approvals = apb_grpc.ApprovalsStub(self._channel)

    def check(
        self,
        *,
        ruleset: str,
        stage: Stage | str = Stage.INPUT,
        text: str = "",
        messages: Sequence[Message | Mapping[str, str]] = (),
        tool: ToolCall | Mapping[str, Any] | None = None,
        principal: Principal | Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
        version: str = "",
        request_id: str = "",
        approval_id: str = "",
        timeout: float | None = None,
    ) -> CheckResult:
        """Ask ``ruleset`` about one request. Raises InvalidArgument (a GuardError) for a field the
        client cannot send, GuardError when the service refuses the call (unknown ruleset, a limit,
        overload, deadline)."""
        data: dict[str, Any] = {"stage": stage, "text": text, "messages": list(messages)}
        data |= {"metadata": dict(metadata or {}), "request_id": request_id, "approval_id": approval_id}
        if tool is not None:
            data["tool"] = tool
        if principal is not None:
            data["principal"] = principal
        with _refusing():
            request = request_from_dict(data)
        return self.check_request(ruleset, request, version=version, timeout=timeout)

    def check_request(
        self, ruleset: str, request: Request, *, version: str = "", timeout: float | None = None
    ) -> CheckResult:
        """Ask ``ruleset`` (pinned to ``version`` if given) about a prepared request."""
        with _refusing():
            message = request_to_proto(ruleset, request, version)
        try:
            response = self._stub.Check(message, timeout=timeout if timeout is not None else self.timeout)
        except grpc.RpcError as exc:
            raise _guard_error(exc) from None
        return result_from_proto(response)

    # approvals

    def get_approval(self, approval_id: str) -> Approval:
        """One approval as it stands now. Raises GuardError (NOT_FOUND for an unknown id)."""
        message = _message(apb.GetApprovalRequest, approval_id=approval_id)
        return approval_from_proto(self._rpc(self._approvals.Get, message))

    def list_approvals(
        self, *, queue: str = "", state: str = "", min_age_s: float = 0.0, limit: int = 0
    ) -> list[Approval]:
        """Approvals, newest first, by queue, state ("pending", ...) and minimum age in seconds."""
        wanted = _state(state)
        message = _message(
            apb.ListApprovalsRequest, queue=queue, state=wanted, min_age_s=min_age_s, limit=limit
        )
        return [approval_from_proto(a) for a in self._rpc(self._approvals.List, message).approvals]

    def resolve_approval(
        self, approval_id: str, *, approve: bool, approver: str = "", comment: str = "", token: str = ""
    ) -> Approval:
        """Approve or deny, as ``approver`` or as the approver whose ``token`` this is (a server with
        an approvers file requires one). Raises GuardError: FAILED_PRECONDITION when it was already
        resolved, UNAUTHENTICATED for a missing or unknown token."""
        resolution = apb.RESOLUTION_APPROVE if approve else apb.RESOLUTION_DENY
        message = _message(
            apb.ResolveApprovalRequest,
            approval_id=approval_id,
            resolution=resolution,
            approver=approver,
            comment=comment,
        )
        return approval_from_proto(self._rpc(self._approvals.Resolve, message, _authorization(token)))

    def cancel_approval(self, approval_id: str, *, actor: str, comment: str = "") -> Approval:
        message = _message(apb.CancelApprovalRequest, approval_id=approval_id, actor=actor, comment=comment)
        return approval_from_proto(self._rpc(self._approvals.Cancel, message))

    def watch_approvals(
        self, *, approval_id: str = "", queue: str = "", timeout: float | None = None
    ) -> Iterator[tuple[str, Approval]]:
        """(event, approval): first the current state, then each change, until ``timeout`` seconds
        pass (then it just ends) or, for one approval, until it is resolved."""
        message = _message(apb.WatchApprovalsRequest, approval_id=approval_id, queue=queue)
        stream = self._approvals.Watch(message, timeout=timeout)
        try:
            for event in stream:
                yield event.event, approval_from_proto(event.approval)
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.Call) and exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                return
            raise _guard_error(exc) from None
        finally:
            stream.cancel()  # type: ignore[no-untyped-call]  # (grpc-stubs leaves it untyped)

    def wait_for_approval(self, approval_id: str, timeout: float | None = None) -> Approval:
        """Wait (with Watch, not polling) until the approval is no longer pending, or ``timeout``
        seconds pass; returns it as last seen (still pending after a timeout)."""
        last: Approval | None = None
        for _, approval in self.watch_approvals(approval_id=approval_id, timeout=timeout):
            last = approval
        return last if last is not None else self.get_approval(approval_id)

    def _rpc(self, method: Any, message: Any, metadata: tuple[tuple[str, str], ...] | None = None) -> Any:
        try:
            return method(message, timeout=self.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise _guard_error(exc) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GuardClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_channel(target: str, options: Sequence[tuple[str, Any]], tls: ClientTls | None) -> grpc.Channel:
    """A channel to ``target``: plaintext, or TLS with ``tls``'s files. Raises OSError or ValueError
    when a TLS file cannot be used."""
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(*tls.read()), options=options)


def client_from_arguments(args: argparse.Namespace) -> GuardClient | None:
    """The client that a command's --server, --timeout and TLS flags describe; None, with the
    reason on stderr, when a TLS file cannot be used."""
    try:
        return GuardClient(args.server, timeout=args.timeout, tls=tls_from_arguments(args))
    except (OSError, ValueError) as exc:
        print(f"tls: {exc}", file=sys.stderr)
        return None


@contextmanager
def _refusing() -> Iterator[None]:
    """A field that is malformed, or that protobuf cannot carry, becomes InvalidArgument."""
    try:
        yield
    except (RequestError, InvalidRequest) as exc:
        raise InvalidArgument(str(exc)) from None


def _message(kind: Callable[..., M], **fields: str | float) -> M:
    """``kind(**fields)``, once each string is one protobuf can encode and each int fits an int32."""
    with _refusing():
        for name, value in fields.items():
            if isinstance(value, str):
                check_text(name, value)
            elif isinstance(value, int) and value not in _INT32:
                raise InvalidRequest(f"{name}: {value} is out of range for an int32")
    return kind(**fields)


def _state(name: str) -> apb.ApprovalState.ValueType:
    if not name:
        return apb.APPROVAL_STATE_UNSPECIFIED
    try:
        return STATES[State(name)]
    except ValueError:
        states = ", ".join(State)
        raise InvalidArgument(f"state: {name!r} is not one of {states}") from None


def _authorization(token: str) -> tuple[tuple[str, str], ...] | None:
    """The call metadata that presents ``token`` (None without one); gRPC takes printable ASCII only."""
    if not token:
        return None
    if not (token.isascii() and token.isprintable()):
        raise InvalidArgument("token: must be printable ASCII (it travels in the authorization header)")
    return (("authorization", f"Bearer {token}"),)


def _guard_error(exc: grpc.RpcError) -> GuardError:
    if isinstance(exc, grpc.Call):
        return GuardError(exc.code(), exc.details() or "")
    return GuardError(grpc.StatusCode.UNKNOWN, str(exc))


def result_from_proto(msg: pb.CheckResponse) -> CheckResult:
    """The typed result for a CheckResponse."""
    return CheckResult(
        outcome=_OUTCOMES[msg.outcome],
        decision_id=msg.decision_id,
        ruleset=msg.ruleset,
        version=msg.version,
        content_hash=msg.content_hash,
        matches=tuple(
            MatchedRule(m.rule, _OUTCOMES[m.outcome], m.reason, m.arm, m.from_error, m.deciding)
            for m in msg.matches
        ),
        reasons=tuple(msg.reasons),
        default_applied=msg.default_applied,
        findings=tuple(_finding(f) for f in msg.findings),
        redacted=msg.redacted if msg.HasField("redacted") else None,
        fallback=_fallback(msg.fallback) if msg.HasField("fallback") else None,
        escalation=_escalation(msg.escalation) if msg.HasField("escalation") else None,
        errors=tuple(EvaluationError(e.source, e.code, e.message, e.rule) for e in msg.errors),
        timings=_timings(msg.timings),
        request_id=msg.request_id,
    )


def _finding(msg: pb.Finding) -> Finding:
    models = tuple(ModelVersion(m.name, m.version) for m in msg.models)
    return Finding(msg.detector, msg.kind, msg.type, msg.score, msg.start, msg.end, models)


def _timings(msg: pb.Timings) -> Timings:
    return Timings(
        evaluation_us=msg.evaluation_us,
        server_us=msg.server_us,
        detector_us=dict(msg.detector_us),
        detector_cache_hits=msg.detector_cache_hits,
        detector_cache_misses=msg.detector_cache_misses,
    )


def _fallback(msg: pb.Fallback) -> Fallback:
    return Fallback(_FALLBACK_KINDS.get(msg.kind, ""), msg.reply, msg.model)


def _escalation(msg: pb.Escalation) -> Escalation:
    deadline = msg.deadline.ToDatetime(dt.UTC) if msg.HasField("deadline") else None
    return Escalation(msg.queue, msg.approval_id, deadline)
