"""The JSON-RPC 2.0 server: HTTP POST ``/`` (single and batch) and WebSocket ``/ws`` with subscriptions.

The app is composed from a :class:`NodeService` and :class:`RpcLimits`; it keeps its state under
typed :class:`aiohttp.web.AppKey` keys. Protocol rules live in :mod:`.dispatch`; this module only
moves bytes and enforces the transport limits:

* a body over ``max_body_bytes`` gets HTTP 413 with a -32600 error object; the server keeps serving;
* when ``max_concurrent_requests`` HTTP requests are in flight, the next gets HTTP 503 with an
  Overloaded (-32006) error instead of queueing without bound;
* a batch of only notifications gets HTTP 204 and no body (specification §6: "return nothing").

WebSocket connections: each has one writer task draining a bounded outgoing queue of
``ws_send_queue_max`` messages. Responses and subscription events both go through it. When it is
full, the client is not reading fast enough: the connection is closed with code
:data:`WS_CLOSE_SLOW_CONSUMER` (4000, the private-use range of RFC 6455 §7.4.2) instead of
letting memory grow; the client reconnects and catches up from the ledger. Each connection has at
most ``ws_inflight_per_conn`` requests running (reading pauses beyond that) and at most
``max_subscriptions_per_conn`` subscriptions. Events are notifications::

    {"jsonrpc": "2.0", "method": "subscription", "params": {"subscription": id, "result": event}}

If a subscription's event stream fails, one last notification carries ``"error"`` instead of
``"result"`` and the subscription ends.

This module must never let one client's input stop the server, and never buffer without a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from secprivnode.api import NodeService, Overloaded, ServiceError
from secprivnode.metrics import NodeMetrics
from secprivnode.rpc import codec
from secprivnode.rpc.dispatch import INVALID_REQUEST, PARSE_ERROR, Observer, error_response, handle_text
from secprivnode.rpc.methods import METHODS, CallContext, Method

__all__ = [
    "LIMITS_KEY",
    "SERVICE_KEY",
    "STATE_KEY",
    "WS_CLOSE_SLOW_CONSUMER",
    "RpcLimits",
    "RpcState",
    "create_rpc_app",
    "run_rpc_server",
]

log = logging.getLogger(__name__)

# RFC 6455 §7.4.2: 4000-4999 are for private use. Ours: "you did not read your events fast enough".
WS_CLOSE_SLOW_CONSUMER = 4000
# Ping interval for idle WebSocket connections, so dead clients are noticed and their subscriptions freed.
WS_HEARTBEAT_S = 30.0


@dataclass(frozen=True, slots=True)
class RpcLimits:
    """Transport limits. Every number bounds memory or work one client can make the node spend."""

    # A proposal with transient inputs is the largest legitimate request: bulk data stays off
    # chain, so 4 MiB is generous for hashes, metadata and wrapped keys, and small enough that
    # max_concurrent_requests full bodies (256 MiB) cannot exhaust a small node.
    max_body_bytes: int = 4 * 1024 * 1024
    # Calls per batch: enough to fetch a page of blocks in one round trip; bounds the concurrent
    # service calls one request can start.
    max_batch_len: int = 100
    # The same bound as an HTTP body: every method works over WebSocket too.
    max_ws_message_bytes: int = 4 * 1024 * 1024
    # A client watches a few event kinds or pending transactions at once; each costs a task.
    max_subscriptions_per_conn: int = 32
    # HTTP requests being served at once; beyond this the node answers 503 rather than queueing.
    max_concurrent_requests: int = 64
    # Open WebSocket connections: each holds a queue and tasks.
    max_ws_connections: int = 256
    # Outgoing messages buffered per WebSocket: a burst of a few hundred blocks' events; beyond
    # that the subscriber is too slow and is disconnected.
    ws_send_queue_max: int = 256
    # How long a subscription waits for room in that buffer before the subscriber counts as too
    # slow. Events of one block arrive together (a block may carry hundreds of transactions), so
    # the pump must let the writer drain rather than judge the client on a single burst.
    ws_slow_consumer_s: float = 2.0
    # Requests running at once on one WebSocket; reading pauses beyond it (back-pressure).
    ws_inflight_per_conn: int = 16
    # How long a close handshake may take before the transport is aborted.
    ws_close_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if not getattr(self, name) > 0:
                raise ValueError(f"RpcLimits.{name} must be positive")


@dataclass(slots=True)
class RpcState:
    """Mutable per-app state: admission counter, open sessions, counters tests and metrics read."""

    limits: RpcLimits
    metrics: NodeMetrics | None
    in_flight: int = 0
    sessions: set[WsSession] = field(default_factory=set)
    slow_disconnects: int = 0
    rejected_too_large: int = 0
    rejected_overloaded: int = 0

    def observer(self) -> Observer | None:
        m = self.metrics
        if m is None:
            return None

        def observe(method: str, outcome: str, seconds: float) -> None:
            m.rpc_requests.labels(method, outcome).inc()
            m.rpc_latency.labels(method).observe(seconds)

        return observe


SERVICE_KEY = web.AppKey("secprivnode_rpc_service", NodeService)
LIMITS_KEY = web.AppKey("secprivnode_rpc_limits", RpcLimits)
STATE_KEY = web.AppKey("secprivnode_rpc_state", RpcState)
TABLE_KEY: web.AppKey[dict[str, Method]] = web.AppKey("secprivnode_rpc_table", dict)


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _json_bytes(value: Any) -> bytes:
    return _json_text(value).encode()


def _json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_json_bytes(value), status=status, content_type="application/json")


# ---- HTTP ----------------------------------------------------------------------------------------


async def _handle_post(request: web.Request) -> web.Response:
    app = request.app
    state, limits = app[STATE_KEY], app[LIMITS_KEY]
    too_large = error_response(INVALID_REQUEST, f"Invalid Request: body exceeds {limits.max_body_bytes} bytes")
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        state.rejected_too_large += 1
        if state.metrics:
            state.metrics.rpc_rejected.labels("too_large").inc()
        return _json_response(too_large, status=413)
    if state.in_flight >= limits.max_concurrent_requests:
        state.rejected_overloaded += 1
        if state.metrics:
            state.metrics.rpc_rejected.labels("overloaded").inc()
        return _json_response(error_response(Overloaded.code, "Overloaded: too many requests in flight"), 503)
    state.in_flight += 1
    try:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # chunked bodies have no Content-Length to check first
            state.rejected_too_large += 1
            if state.metrics:
                state.metrics.rpc_rejected.labels("too_large").inc()
            return _json_response(too_large, status=413)
        table: dict[str, Method] = app[TABLE_KEY]
        ctx = CallContext(app[SERVICE_KEY], None, table)
        result = await handle_text(body, ctx, max_batch_len=limits.max_batch_len, observer=state.observer())
    finally:
        state.in_flight -= 1
    if result is None:
        return web.Response(status=204)
    try:
        return _json_response(result)
    except (TypeError, ValueError):  # a handler produced something JSON cannot carry: our bug
        log.exception("unserialisable RPC result")
        return _json_response(error_response(-32603, "Internal error"), 500)


# ---- WebSocket -----------------------------------------------------------------------------------


class WsSession:
    """One WebSocket connection: bounded outgoing queue, subscriptions, and their tasks."""

    def __init__(self, ws: web.WebSocketResponse, service: NodeService, state: RpcState) -> None:
        self.ws = ws
        self.service = service
        self.limits = state.limits
        self.state = state
        self.out: asyncio.Queue[str] = asyncio.Queue(maxsize=self.limits.ws_send_queue_max)
        self.overflow = asyncio.Event()
        self.subs: dict[str, asyncio.Task[None]] = {}
        self._next_sub = 0

    def offer(self, data: str) -> bool:
        """Queue a message for the writer; on overflow mark the connection for closing."""
        if self.overflow.is_set():
            return False
        try:
            self.out.put_nowait(data)
        except asyncio.QueueFull:
            self.overflow.set()
            return False
        return True

    async def offer_wait(self, data: str) -> bool:
        """Queue a subscription event, waiting up to ``ws_slow_consumer_s`` for room; past that
        mark the connection for closing (the subscriber does not read fast enough)."""
        if self.overflow.is_set():
            return False
        try:
            await asyncio.wait_for(self.out.put(data), self.limits.ws_slow_consumer_s)
        except TimeoutError:
            self.overflow.set()
            return False
        return True

    async def writer(self) -> None:
        while True:
            data = await self.out.get()
            await self.ws.send_str(data)

    # -- subscriptions --

    def subscribe(
        self, kinds: frozenset[str], channel: str | None, tx_id: bytes | None, released: asyncio.Event
    ) -> str:
        """Start a subscription whose events wait for ``released`` (set once the response is queued)."""
        if len(self.subs) >= self.limits.max_subscriptions_per_conn:
            raise Overloaded(f"at most {self.limits.max_subscriptions_per_conn} subscriptions per connection")
        self._next_sub += 1
        sub_id = f"0x{self._next_sub:x}"
        events = self.service.subscribe(channel, kinds, tx_id)
        task = asyncio.get_running_loop().create_task(self._pump(sub_id, events, released))
        self.subs[sub_id] = task
        metrics = self.state.metrics
        if metrics:
            metrics.ws_subscriptions.inc()
            # A done callback also runs for a task cancelled before it started (no finally would).
            task.add_done_callback(lambda _t: metrics.ws_subscriptions.dec())
        return sub_id

    def unsubscribe(self, subscription: str) -> bool:
        task = self.subs.pop(subscription, None)
        if task is None:
            return False
        task.cancel()
        return True

    async def _pump(self, sub_id: str, events: AsyncIterator[Any], released: asyncio.Event) -> None:
        def note(key: str, value: Any) -> str:
            params = {"subscription": sub_id, key: value}
            return _json_text({"jsonrpc": "2.0", "method": "subscription", "params": params})

        try:
            # The subscribe response must precede the first event (the client learns the id from it).
            await released.wait()
            async for event in events:
                if not await self.offer_wait(note("result", codec.to_json(event))):
                    return
        except ServiceError as exc:
            self.offer(note("error", {"code": exc.code, "message": exc.message}))
        except Exception:
            log.exception("subscription %s failed", sub_id)
            self.offer(note("error", {"code": -32603, "message": "Internal error"}))
        finally:
            self.subs.pop(sub_id, None)
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def handle(self, text: str, table: dict[str, Method], inflight: asyncio.Semaphore) -> None:
        scope = _MessageScope(self)
        try:
            ctx = CallContext(self.service, scope, table)
            result = await handle_text(
                text, ctx, max_batch_len=self.limits.max_batch_len, observer=self.state.observer()
            )
            if result is not None:
                self.offer(_json_text(result))
        finally:
            scope.released.set()
            inflight.release()

    async def cancel_all(self) -> None:
        tasks = list(self.subs.values())
        self.subs.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


class _MessageScope:
    """The :class:`methods.Session` one WebSocket message sees: its subscriptions start delivering
    only after that message's response is queued (a batch may answer other calls concurrently)."""

    def __init__(self, session: WsSession) -> None:
        self.session = session
        self.released = asyncio.Event()

    def subscribe(self, kinds: frozenset[str], channel: str | None, tx_id: bytes | None) -> str:
        return self.session.subscribe(kinds, channel, tx_id, self.released)

    def unsubscribe(self, subscription: str) -> bool:
        return self.session.unsubscribe(subscription)


async def _read_loop(session: WsSession, table: dict[str, Method], tasks: set[asyncio.Task[None]]) -> None:
    ws, limits = session.ws, session.limits
    inflight = asyncio.Semaphore(limits.ws_inflight_per_conn)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await inflight.acquire()
            t = asyncio.get_running_loop().create_task(session.handle(msg.data, table, inflight))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        elif msg.type == WSMsgType.BINARY:
            session.offer(_json_text(error_response(PARSE_ERROR, "Parse error: send JSON-RPC as text frames")))
        else:  # CLOSE / ERROR: the iterator ends on its own after these
            break


async def _handle_ws(request: web.Request) -> web.StreamResponse:
    app = request.app
    state, limits = app[STATE_KEY], app[LIMITS_KEY]
    if len(state.sessions) >= limits.max_ws_connections:
        return _json_response(error_response(Overloaded.code, "Overloaded: too many WebSocket connections"), 503)
    ws = web.WebSocketResponse(max_msg_size=limits.max_ws_message_bytes, heartbeat=WS_HEARTBEAT_S)
    await ws.prepare(request)
    session = WsSession(ws, app[SERVICE_KEY], state)
    state.sessions.add(session)
    if state.metrics:
        state.metrics.ws_connections.inc()
    request_tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    reader = loop.create_task(_read_loop(session, app[TABLE_KEY], request_tasks))
    writer = loop.create_task(session.writer())
    overflow = loop.create_task(session.overflow.wait())
    try:
        await asyncio.wait({reader, writer, overflow}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Bookkeeping first: aiohttp cancels this handler when the transport is lost or aborted.
        state.sessions.discard(session)
        slow = session.overflow.is_set()
        if state.metrics:
            state.metrics.ws_connections.dec()
            if slow:
                state.metrics.ws_slow_disconnects.inc()
        if slow:
            state.slow_disconnects += 1
            log.info("closing WebSocket of a slow subscriber (queue of %d full)", limits.ws_send_queue_max)
        for t in (reader, writer, overflow, *request_tasks):
            t.cancel()
        await session.cancel_all()
        for t in (reader, writer, overflow, *request_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        code = WS_CLOSE_SLOW_CONSUMER if slow else WSCloseCode.OK
        await _close_ws(ws, request, code, b"subscriber too slow" if slow else b"", limits.ws_close_timeout_s)
    return ws


async def _close_ws(ws: web.WebSocketResponse, request: web.Request, code: int, reason: bytes, timeout: float) -> None:
    """Close with ``code``; a client that does not read cannot hold the close open past ``timeout``."""
    try:
        await asyncio.wait_for(ws.close(code=code, message=reason), timeout)
    except (TimeoutError, ConnectionError, RuntimeError):
        transport = request.transport
        if transport is not None:
            transport.abort()


async def _on_shutdown(app: web.Application) -> None:
    for session in list(app[STATE_KEY].sessions):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown"), 1.0)


# ---- assembly ------------------------------------------------------------------------------------


def create_rpc_app(
    service: NodeService, *, limits: RpcLimits = RpcLimits(), metrics: NodeMetrics | None = None
) -> web.Application:
    """An aiohttp application serving JSON-RPC on ``POST /`` and ``GET /ws`` for ``service``."""
    # client_max_size makes aiohttp itself refuse longer bodies (chunked ones included).
    app = web.Application(client_max_size=limits.max_body_bytes)
    app[SERVICE_KEY] = service
    app[LIMITS_KEY] = limits
    app[STATE_KEY] = RpcState(limits, metrics)
    app[TABLE_KEY] = dict(METHODS)
    app.router.add_post("/", _handle_post)
    app.router.add_get("/ws", _handle_ws)
    app.on_shutdown.append(_on_shutdown)
    return app


async def run_rpc_server(
    app: web.Application, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Start serving ``app`` on ``host:port`` (0 = any free port), over TLS when ``ssl_context`` is
    given (HTTPS and WSS; a plain-HTTP client then fails the handshake); return the runner and the
    bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    addresses = runner.addresses
    assert addresses, "the site started without a listening socket"
    return runner, int(addresses[0][1])
