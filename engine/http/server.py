"""The HTTP server of `[http]`: a Starlette app on uvicorn, in a thread of the worker, over its Guard."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.config import Limits
from engine.guard import Guard, StartError
from engine.http import litellm
from engine.http.config import HttpConfig
from engine.runtime.observer import observer
from engine.runtime.registry import UnknownRuleset

log = logging.getLogger("palisade.http")
START_TIMEOUT_S = 30.0


def build_app(guard: Guard, config: HttpConfig, limits: Limits) -> Starlette:
    """The ASGI app: POST /beta/litellm_basic_guardrail_api, and GET /health (503 while the audit
    log cannot take records)."""

    async def guardrail(request: Request) -> JSONResponse:
        body = await _body(request, config.max_body_bytes)
        if body is None:
            return _error(413, f"the body is over {config.max_body_bytes} bytes")
        try:
            call = litellm.GuardrailRequest.model_validate_json(body)
            ruleset = litellm.ruleset_of(config, call, request.headers)
            trace = request.headers.items()  # a W3C traceparent: the Checks join the caller's trace
            answer = await run_in_threadpool(_decide, trace, guard, limits, ruleset, call)
        except ValidationError as exc:
            first = exc.errors()[0]
            return _error(400, f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}")
        except (litellm.UnknownRulesetName, UnknownRuleset) as exc:
            return _error(404, str(exc))
        return JSONResponse(answer)

    async def health(request: Request) -> JSONResponse:
        ok = guard.healthy
        return JSONResponse({"status": "SERVING" if ok else "NOT_SERVING"}, status_code=200 if ok else 503)

    routes = [Route(litellm.PATH, guardrail, methods=["POST"]), Route("/health", health, methods=["GET"])]
    return Starlette(routes=routes)


def _decide(
    trace: Iterable[tuple[str, str]],
    guard: Guard,
    limits: Limits,
    ruleset: str,
    call: litellm.GuardrailRequest,
) -> dict[str, Any]:
    with observer().traced(trace):
        return litellm.decide(guard, limits, ruleset, call)


async def _body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it runs over ``limit`` bytes (the rest is not read)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    log.warning("refused a guardrail call (%d): %s", status, message)
    observer().http_error("litellm", status)
    return JSONResponse({"error": {"message": message}}, status_code=status)


class HttpServer:
    """Serves the app on ``config.listen`` from a thread of its own; the Guard is the caller's."""

    def __init__(self, guard: Guard, config: HttpConfig, limits: Limits, *, reuse_port: bool = False) -> None:
        self.config = config
        self.reuse_port = reuse_port
        settings = uvicorn.Config(
            build_app(guard, config, limits), log_level="warning", lifespan="off", access_log=False
        )
        self.server = uvicorn.Server(settings)
        self.thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> int:
        """Bind and serve; returns the port (the chosen one when the listen address says port 0)."""
        sock = self._bind()
        self.port = int(sock.getsockname()[1])
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="palisade-http", daemon=True
        )
        self.thread.start()
        give_up = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > give_up:
                raise StartError(f"http.listen: the HTTP server did not start on {self.config.listen}")
            time.sleep(0.01)
        return self.port

    def _bind(self) -> socket.socket:
        host, _, port = self.config.listen.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, int(port)))
        except (OSError, ValueError) as exc:
            sock.close()
            raise StartError(f"http.listen: cannot bind {self.config.listen}: {exc}") from None
        sock.listen(1024)
        return sock

    def stop(self, grace_s: float | None = None) -> None:
        """Stop taking requests; let those in flight finish (up to ``grace_s``)."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(grace_s)
            if self.thread.is_alive():
                self.server.force_exit = True
                self.thread.join()

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(1.0)
