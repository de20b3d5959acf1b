"""The ExternalProcessor servicer: each HTTP exchange through Envoy becomes Checks, their answers Envoy's."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc

from dsl.types import Outcome, Stage
from engine.config import Limits
from engine.envoy import wire
from engine.envoy.apis import CHAT, RESPONSES, Api
from engine.envoy.checks import Answer, Asked, Caller, Checks, Verdict, refusal, verdict
from engine.envoy.config import TRACE_HEADERS, EnvoyConfig
from engine.envoy.openai import BodyError, Chat, Slot, ToolUse, error_body, rewritten
from engine.envoy.sse import StreamError
from engine.envoy.stream import StreamGuard
from engine.guard import Guard
from engine.protocol.request_codec import InvalidRequest
from engine.runtime.observer import observer
from engine.runtime.registry import UnknownRuleset
from engine.runtime.request import Principal

log = logging.getLogger("palisade.envoy")
JSON = "application/json"
SSE = "text/event-stream"
# removed from a guarded request, so that upstreams answer bodies Palisade can read (a route that skips
# the request headers message removes it itself: request_headers_to_remove)
UNREAD = ("accept-encoding",)
Ask = tuple[Stage, list[Slot], ToolUse | None]


class ExternalProcessor:
    """Thin: decisions, approvals and audit records are Guard's; this adapts Envoy's ext_proc to it.

    One ``Process`` stream is one HTTP exchange; each of its messages gets one answer, but for the
    chunks of a streamed answer (FULL_DUPLEX_STREAMED): those are answered when text may leave."""

    def __init__(self, guard: Guard, config: EnvoyConfig, limits: Limits) -> None:
        self.guard = guard
        self.config = config
        self.limits = limits

    def Process(self, requests: Iterable[Any], context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        exchange = Exchange(self.guard, self.config, self.limits)
        for request in requests:
            answer = exchange.answer(request)
            if answer is not None:
                yield answer


class Exchange:
    """One HTTP exchange: its request headers say who asks and which ruleset applies; its request
    body is checked whole (BUFFERED); its response is checked whole (JSON, BUFFERED) or as it
    streams (SSE, FULL_DUPLEX_STREAMED: Envoy sends each chunk without waiting for an answer, and
    the client gets what Palisade sends back, when it does), the mode chosen on the response headers.

    A route may skip the request headers message (one round trip less): its request body then
    carries the headers Palisade reads as attributes (``EnvoyConfig.request_attributes``)."""

    def __init__(self, guard: Guard, config: EnvoyConfig, limits: Limits) -> None:
        self.guard = guard
        self.config = config
        self.limits = limits
        self.checks: Checks | None = None
        self.api: Api = CHAT  # the API of the guarded path
        self.chat: Chat | None = None
        self.stream: StreamGuard | None = None
        self.ended = False  # the streamed answer's last bytes were sent: the rest of the upstream's goes
        self.passing = False  # not guarded, and `other_paths = "allow"`: every part goes on unchecked
        self._handlers: dict[str, Callable[[Any], Any]] = {
            "request_headers": self._request_headers,
            "request_body": self._request_body,
            "response_headers": self._response_headers,
            "response_body": self._response_body,
        }

    def answer(self, request: Any) -> Any | None:
        """The one answer Envoy needs to ``request`` (None: a chunk of a streamed answer that needs
        none now); never raises."""
        part = wire.kind(request)
        handler = self._handlers.get(part)
        if handler is None:  # trailers, which go on as they are
            return wire.proceed(part)
        try:
            return handler(request)
        except (BodyError, StreamError, InvalidRequest) as exc:
            return self._fail(part, _cannot_check(part, str(exc)))
        except UnknownRuleset as exc:
            return self._fail(part, Answer(500, error_body(str(exc), "server_error", "unknown_ruleset")))
        except Exception:  # a bug here must cost one exchange, and must never let it through
            log.exception("ext_proc %s failed", part)
            message = "Palisade could not check this; its log has the details"
            return self._fail(part, Answer(500, error_body(message, "server_error", "internal_error")))

    def _request_headers(self, request: Any) -> Any:
        opened = self._open("request_headers", wire.headers_of(request), wire.route_name(request))
        return wire.proceed("request_headers", remove=UNREAD) if opened is None else opened

    def _open(self, part: str, headers: dict[str, str], route: str) -> Any | None:
        """Start the exchange from its request's headers: None when it is guarded (its Checks are
        ready), else the answer to ``part`` (passed unchecked, or refused)."""
        path = headers.get(":path", "").partition("?")[0]
        guarded = dict.fromkeys(self.config.chat_paths, CHAT)
        guarded |= dict.fromkeys(self.config.responses_paths, RESPONSES)
        if headers.get(":method") == "POST" and path in guarded:
            self.api = guarded[path]
            self.checks = Checks(self.guard, self.limits, self._caller(headers, route))
            return None
        if self.config.other_paths == "allow":
            self.passing = True
            return wire.proceed(part, skip_bodies=part == "request_headers")
        method = headers.get(":method", "(no request.method attribute)")
        message = f"this gateway passes only POST {', '.join(guarded)}; {method} {path} is refused"
        return _immediate(Answer(403, error_body(message, "invalid_request_error", "not_guarded")))

    def _caller(self, headers: dict[str, str], route: str) -> Caller:
        config = self.config
        ruleset = headers.get(config.ruleset_header, "") or config.routes.get(route, "") or config.ruleset
        roles = headers.get(config.roles_header, "").split(",")
        principal = Principal(
            id=headers.get(config.principal_header, ""),
            tenant=headers.get(config.tenant_header, ""),
            roles=tuple(role.strip() for role in roles if role.strip()),
        )
        metadata = {key: headers[name] for key, name in config.metadata_headers.items() if name in headers}
        approval_id = headers.get(config.approval_header, "")
        trace = tuple((name, headers[name]) for name in TRACE_HEADERS if name in headers)
        return Caller(ruleset, principal, metadata, headers.get("x-request-id", ""), approval_id, trace)

    def _request_body(self, request: Any) -> Any:
        if self.checks is None and not self.passing:  # the route skips the request headers message
            opened = self._open("request_body", wire.attribute_headers(request), wire.route_name(request))
            if opened is not None:
                return opened
        if self.passing:
            return wire.proceed("request_body")
        raw, _ = wire.body_of(request)
        if len(raw) > self.config.max_body_bytes:
            message = f"the request body is {len(raw)} bytes, over the limit of {self.config.max_body_bytes}"
            return _immediate(Answer(413, error_body(message, "invalid_request_error", "body_too_large")))
        chat = self.chat = self.api.parse_request(raw, self.config.input_roles)
        asks: list[Ask] = [(Stage.INPUT, list(chat.texts), None)] if chat.texts else []
        asks += [(Stage.TOOL_CALL, [], call) for call in chat.tool_calls]
        asks += [(Stage.TOOL_RESULT, [r.result], r) for r in chat.tool_results if r.result is not None]
        found = verdict(self._ask(asks))
        if found.outcome in (Outcome.BLOCK, Outcome.ESCALATE):
            return _immediate(self._refusal(found))
        if found.reply is not None:
            return _immediate(self._reply(found, chat.model, chat.stream))
        if found.model or found.texts:
            return _rewrite("request_body", rewritten(chat.body, found.texts, found.model))
        return wire.proceed("request_body")

    def _ask(self, asks: Iterable[Ask]) -> list[Asked]:
        """The Checks, in order, until one blocks (nothing after it can change the answer)."""
        done: list[Asked] = []
        for stage, slots, tool in asks:
            done.append(self._checks().check(stage, slots, tool))
            if done[-1].checked.decision.outcome is Outcome.BLOCK:
                break
        return done

    def _response_headers(self, request: Any) -> Any:
        if self.passing:
            return wire.proceed("response_headers", response_body_mode=wire.NONE)
        if self.checks is None:  # a route that skips the request headers, and a request without a body
            message = "a guarded request without a body"
            return _immediate(Answer(400, error_body(message, "invalid_request_error", "invalid_body")))
        headers = wire.headers_of(request)
        kind = headers.get("content-type", "").partition(";")[0].strip().lower()
        if headers.get(":status") != "200":  # the upstream's own errors pass as they are
            return wire.proceed("response_headers", response_body_mode=wire.NONE)
        if headers.get("content-encoding", "identity") != "identity" or kind not in (JSON, SSE):
            what = (
                f"content-type {kind or 'none'}, content-encoding {headers.get('content-encoding', 'none')}"
            )
            return _immediate(
                _cannot_check("response_headers", f"a completion Palisade cannot read ({what})")
            )
        if kind == SSE:
            hold, max_bytes = self.config.stream_hold_chars, self.config.max_body_bytes
            self.stream = StreamGuard(self._checks(), hold, max_bytes, self._stream_end, self.api.dialect())
            return wire.proceed(
                "response_headers", remove=("content-length",), response_body_mode=wire.FULL_DUPLEX
            )
        return wire.proceed("response_headers", response_body_mode=wire.BUFFERED)

    def _response_body(self, request: Any) -> Any | None:
        if self.passing:
            return wire.proceed("response_body")
        raw, end = wire.body_of(request)
        if self.stream is not None:
            return None if self.ended else self._stream_out(self.stream, self.stream.feed(raw, end), end)
        chat = self.api.parse_answer(raw)
        asks: list[Ask] = [(Stage.OUTPUT, [slot], None) for slot in chat.texts]
        asks += [(Stage.TOOL_CALL, [], call) for call in chat.tool_calls]
        found = verdict(self._ask(asks))
        if found.outcome in (Outcome.BLOCK, Outcome.ESCALATE) or found.model:
            return _immediate(self._refusal(found))
        if found.reply is not None:
            return _rewrite("response_body", self._reply(found, chat.model, stream=False).body)
        if found.texts:
            return _rewrite("response_body", rewritten(chat.body, found.texts))
        return wire.proceed("response_body")

    def _stream_out(self, stream: StreamGuard, out: bytes, end: bool) -> Any | None:
        """What may leave of the streamed answer now, if anything; its end once it ended or stopped."""
        self.ended = end or stream.stopped
        return wire.streamed(out, self.ended) if out or self.ended else None

    def _stream_end(self, found: Verdict) -> bytes:
        """The events that end a stream for ``found``: the canned reply, or the error."""
        assert self.stream is not None and found.deciding is not None
        if found.reply is not None:
            model = self.chat.model if self.chat is not None else ""
            reply_id = self.api.reply_prefix + found.deciding.decision_id
            return self.stream.dialect.reply(model, found.reply, reply_id)
        return self.stream.dialect.error(self._refusal(found).body)

    def _refusal(self, found: Verdict) -> Answer:
        assert found.deciding is not None
        return refusal(found.deciding, self.config.approval_header)

    def _reply(self, found: Verdict, model: str, stream: bool) -> Answer:
        """The canned reply as an answer: a whole one, or the events of a whole stream."""
        assert found.deciding is not None and found.reply is not None
        reply_id = self.api.reply_prefix + found.deciding.decision_id
        headers = {"x-palisade-decision-id": found.deciding.decision_id}
        if stream:
            dialect = self.api.dialect()
            body = dialect.reply(model, found.reply, reply_id) + dialect.closing
            return Answer(200, body, headers | {"content-type": SSE})
        return Answer(200, self.api.reply(model, found.reply, reply_id), headers | {"content-type": JSON})

    def _checks(self) -> Checks:
        assert self.checks is not None
        return self.checks

    def _fail(self, part: str, answer: Answer) -> Any | None:
        """``answer`` in place of the exchange: an error event that ends a stream already under way,
        else an immediate response."""
        observer().http_error("envoy", answer.status)
        if part == "response_body" and self.stream is not None:
            return None if self.ended else self._stream_out(self.stream, self.stream.fail(answer.body), True)
        return _immediate(answer)


def _cannot_check(part: str, why: str) -> Answer:
    """A body Palisade cannot check: the client's (400) or the upstream's (502); never let through."""
    if part.startswith("request"):
        return Answer(400, error_body(why, "invalid_request_error", "invalid_body"))
    return Answer(
        502,
        error_body(
            f"the upstream's answer cannot be checked: {why}", "server_error", "invalid_upstream_body"
        ),
    )


def _immediate(answer: Answer) -> Any:
    headers = {"content-type": JSON} | answer.headers
    return wire.immediate(answer.status, answer.body, headers, f"palisade_{answer.status}")


def _rewrite(part: str, body: bytes) -> Any:
    return wire.proceed(part, body=body, set_headers={"content-length": str(len(body))})
