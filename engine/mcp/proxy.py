"""The relay: each line of the client's to the MCP server and back, the guarded methods checked on the way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import uvicorn
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from mcp.types import jsonrpc_message_adapter
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from engine.guard import StartError
from engine.mcp import messages as m
from engine.mcp.guarded import Asked, Guarded, Passed

log = logging.getLogger("palisade.mcp")
STOP_GRACE_S = 5.0  # after the client leaves, how long the server has to exit before it is terminated


@dataclass(frozen=True, slots=True)
class Side:
    """One end of the relay: where its lines come from and how to send it one."""

    reader: asyncio.StreamReader
    send: Callable[[bytes], Awaitable[None]]


async def read_line(reader: asyncio.StreamReader, limit: int) -> bytes | m.Malformed | None:
    """The next line (None at the end), or Malformed for one over the reader's limit (dropped whole)."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:  # the end: a last line without its newline, or nothing
        return exc.partial or None
    except asyncio.LimitOverrunError as exc:
        await _drop_line(reader, exc.consumed)
        return m.Malformed(f"a message over {limit} bytes", m.INVALID_REQUEST)


async def _drop_line(reader: asyncio.StreamReader, buffered: int) -> None:
    """Read and drop the rest of an over-long line, ``buffered`` bytes of which the reader holds."""
    while True:
        await reader.readexactly(buffered)
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as exc:
            buffered = exc.consumed
        except asyncio.IncompleteReadError:
            return


class Relay:
    """Passes messages both ways. A tools/call waits for its Check (and approval) in a task of its
    own, so that the session goes on meanwhile; when the server ends, every request it has not
    answered is answered with an error, so that no client waits for ever."""

    def __init__(self, guarded: Guarded, client: Side, server: Side, limit: int) -> None:
        self.guarded = guarded
        self.limit = limit
        self.client = client
        self.server = server
        self.open: dict[m.RequestId, Asked | None] = {}  # passed to the server, not answered yet
        self.held: dict[m.RequestId, threading.Event] = {}  # tools/call being checked: set to stop its wait
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> bool:
        """Relay until either side ends; True if the server ended first."""
        from_client = asyncio.create_task(self._from_client())
        from_server = asyncio.create_task(self._from_server())
        await asyncio.wait({from_client, from_server}, return_when=asyncio.FIRST_COMPLETED)
        server_ended = from_server.done()
        from_client.cancel()
        for stop in self.held.values():
            stop.set()
        for task in list(self.tasks):
            task.cancel()
        if server_ended:
            for request_id in [*self.held, *self.open]:
                await self._to_client(
                    m.error(request_id, m.INTERNAL_ERROR, "the MCP server exited before answering")
                )
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(from_server, STOP_GRACE_S)
        from_server.cancel()
        return server_ended

    async def _from_client(self) -> None:
        while (line := await read_line(self.client.reader, self.limit)) is not None:
            message = line if isinstance(line, m.Malformed) else m.parse(line)
            if isinstance(message, m.Malformed):
                log.warning("the MCP client sent %s", message.problem)
                await self._to_client(
                    m.error(message.request_id, message.code, f"Palisade: {message.problem}")
                )
            elif m.is_request(message) and message["method"] == "tools/call":
                self._spawn(self._call(message))
            elif m.is_request(message):  # in order: e.g. initialize before the notification that follows
                await self._pass(message["id"], self.guarded.request(message))
            else:
                if message.get("method") == "notifications/cancelled":
                    self._cancel((message.get("params") or {}).get("requestId"))
                await self.server.send(m.encode(message))
        await self.server.send(b"")  # the client is gone: close the server's input

    async def _call(self, message: m.Message) -> None:
        request_id, stop = message["id"], threading.Event()
        self.held[request_id] = stop
        try:
            passed = await asyncio.to_thread(self.guarded.request, message, self._progress(message), stop)
        finally:
            self.held.pop(request_id, None)
        if not stop.is_set():  # a cancelled call is answered by no one (the client gave up on it)
            await self._pass(request_id, passed)

    async def _pass(self, request_id: m.RequestId, passed: Passed) -> None:
        if passed.answer is not None:
            await self._to_client(passed.answer)
        elif passed.forward is not None:
            self.open[request_id] = passed.asked
            await self.server.send(m.encode(passed.forward))

    def _progress(self, message: m.Message) -> Callable[[str], None] | None:
        """Progress notifications for a held call, if its client asked for them (a progress token)."""
        token = ((message.get("params") or {}).get("_meta") or {}).get("progressToken")
        if not isinstance(token, str | int):
            return None
        loop, count = asyncio.get_running_loop(), [0]

        def progress(text: str) -> None:
            count[0] += 1
            notification = m.progress(token, count[0], text)
            loop.call_soon_threadsafe(lambda: self._spawn(self._to_client(notification)))

        return progress

    def _cancel(self, request_id: object) -> None:
        stop = self.held.get(request_id) if isinstance(request_id, int | str) else None
        if stop is not None:
            stop.set()

    async def _from_server(self) -> None:
        while (line := await read_line(self.server.reader, self.limit)) is not None:
            message = line if isinstance(line, m.Malformed) else m.parse(line)
            if isinstance(message, m.Malformed):
                self._malformed_answer(message)
            elif m.is_response(message) and message.get("id") in self.open:
                asked = self.open.pop(message["id"])
                if asked is None:
                    await self._to_client(message)
                else:
                    self._spawn(self._answer(asked, message))
            else:
                await self._to_client(message)

    def _malformed_answer(self, message: m.Malformed) -> None:
        """Log what the server sent wrong; if it names an open request, that request fails (closed)."""
        log.warning("the MCP server sent %s", message.problem)
        if message.request_id is not None and message.request_id in self.open:
            del self.open[message.request_id]
            text = f"the MCP server sent a malformed answer: {message.problem}"
            self._spawn(self._to_client(m.error(message.request_id, m.INTERNAL_ERROR, text)))

    async def _answer(self, asked: Asked, message: m.Message) -> None:
        await self._to_client(await asyncio.to_thread(self.guarded.response, asked, message))

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _to_client(self, message: m.Message) -> None:
        await self.client.send(m.encode(message))


async def serve(guarded: Guarded, command: Sequence[str], url: str, listen: str, max_bytes: int) -> int:
    """Relay between the client (on this process's stdio, or one session of Streamable HTTP at
    ``listen``) and the MCP server (``command`` started on pipes, or Streamable HTTP at ``url``)."""
    opened = http_client_side(listen, max_bytes) if listen else stdio_client_side(max_bytes)
    async with opened as client:
        if url:
            return await run_remote(guarded, url, max_bytes, client)
        return await run_stdio(guarded, command, max_bytes, client)


@asynccontextmanager
async def stdio_client_side(max_bytes: int) -> AsyncIterator[Side]:
    """The client on this process's stdin and stdout."""
    reader = asyncio.StreamReader(limit=max_bytes)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    yield Side(reader, _stdout)


@asynccontextmanager
async def http_client_side(listen: str, max_bytes: int) -> AsyncIterator[Side]:
    """The client as one Streamable HTTP session at http://LISTEN/mcp (the SDK's server transport);
    it ends when the client ends the session."""
    transport = StreamableHTTPServerTransport(mcp_session_id=uuid.uuid4().hex)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") == "/mcp":
            await transport.handle_request(scope, receive, send)
        elif scope["type"] == "http":
            await PlainTextResponse("not found: the MCP endpoint is /mcp", status_code=404)(
                scope, receive, send
            )

    host, _, port = listen.rpartition(":")
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host.strip("[]"), port=int(port), log_level="warning", timeout_graceful_shutdown=2
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with transport.connect() as (from_client, to_client):
            side, pumping = _stream_side(from_client, to_client, max_bytes, "the MCP client")
            while not server.started and not serving.done():
                await asyncio.sleep(0.01)
            if serving.done():
                raise StartError(f"mcp: cannot serve on {listen}")
            log.info("serving MCP on http://%s/mcp", listen)
            yield side
            pumping.cancel()
    finally:
        server.should_exit = True
        await serving


def _stream_side(
    incoming: ReadStream[SessionMessage | Exception],
    outgoing: WriteStream[SessionMessage],
    max_bytes: int,
    who: str,
) -> tuple[Side, asyncio.Task[None]]:
    """A Side over an SDK transport's streams: its messages become lines; lines sent become messages."""
    lines = asyncio.StreamReader(limit=max_bytes)

    async def pump() -> None:
        try:
            async for item in incoming:
                if isinstance(item, Exception):
                    log.warning("%s: %s", who, item)
                    continue
                lines.feed_data(
                    m.encode(item.message.model_dump(mode="json", by_alias=True, exclude_unset=True))
                )
        except anyio.ClosedResourceError:  # the session was ended (a client's DELETE closes both ends)
            pass
        finally:
            lines.feed_eof()

    async def send(data: bytes) -> None:
        if data:  # b"": the other end is gone; leaving the transport's block ends the session
            message = jsonrpc_message_adapter.validate_json(data, by_name=False)
            await outgoing.send(SessionMessage(message))

    return Side(lines, send), asyncio.create_task(pump())


async def run_stdio(guarded: Guarded, command: Sequence[str], max_bytes: int, client: Side) -> int:
    """Start the MCP server ``command`` on pipes and relay between it and ``client``; the exit
    status: the server's when it ended first (1 if it was killed), else 0."""
    try:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=max_bytes
        )
    except OSError as exc:
        raise StartError(f"cannot start the MCP server {command[0]!r}: {exc.strerror or exc}") from None
    assert process.stdin is not None and process.stdout is not None
    relay = Relay(guarded, client, Side(process.stdout, _writer(process.stdin)), max_bytes)
    server_ended = await relay.run()
    status = await _stopped(process)
    if server_ended:
        log.error("the MCP server %r exited with status %s", command[0], status)
        return status if status > 0 else 1
    return 0


async def run_remote(guarded: Guarded, url: str, max_bytes: int, client: Side) -> int:
    """Relay between ``client`` and the MCP server at ``url`` over Streamable HTTP (the SDK's client
    transport: sessions, SSE answers, the server's own stream); the exit status is 1 if the
    server's side ended first, else 0."""
    async with streamable_http_client(url) as (from_server, to_server):
        server, pumping = _stream_side(from_server, to_server, max_bytes, f"the MCP server at {url}")
        server_ended = await Relay(guarded, client, server, max_bytes).run()
        pumping.cancel()
    if server_ended:
        log.error("the MCP server at %s closed the session", url)
    return 1 if server_ended else 0


async def _stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _writer(stream: asyncio.StreamWriter) -> Callable[[bytes], Awaitable[None]]:
    """Sends lines to the server one at a time; b"" closes its input."""
    lock = asyncio.Lock()

    async def send(data: bytes) -> None:
        async with lock:
            if stream.is_closing():
                return
            if not data:
                stream.close()
                return
            stream.write(data)
            with contextlib.suppress(ConnectionError):
                await stream.drain()

    return send


async def _stopped(process: asyncio.subprocess.Process) -> int:
    """The server's exit status, once it has exited (terminated after STOP_GRACE_S)."""
    try:
        return await asyncio.wait_for(process.wait(), STOP_GRACE_S)
    except TimeoutError:
        process.terminate()
        return await process.wait()
