"""Message dispatch shared by both transports: handler registry and request/response matching.

A transport owns connections and calls :meth:`Dispatcher.dispatch` with each message a verified
peer sent; it supplies ``send_reliable`` (queue a message that must not be dropped) through the
constructor. Requests carry a per-transport increasing id; the response is matched by
``(peer, id)`` and a request that gets none within its timeout fails with
:class:`RequestTimeout`.

This module never opens sockets; it only needs a running event loop for futures.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, Final

from crypto.encoding import EncodingError, encode
from p2p.api import AppHandler, EventListener, MessageHandler, PeerEvent, RequestHandler
from p2p.errors import (
    LocalProtocolError,
    PeerUnavailable,
    RemoteProtocolError,
    RequestFailed,
    RequestTimeout,
    SendQueueFull,
)
from p2p.messages import AppMessage, AppRequest, AppResponse, Message

__all__ = ["MAX_INFLIGHT_REQUESTS_PER_PEER", "MAX_PENDING_REQUESTS", "Dispatcher", "DispatchingTransport"]

log = logging.getLogger(__name__)

# Our outstanding requests across all peers. Endorsement fan-out is the main user: a few per
# transaction in flight; 4096 keeps a stuck peer from growing the table without bound.
MAX_PENDING_REQUESTS: Final = 4096
# Requests of one peer being served at once; beyond this the peer gets an immediate "busy" error
# rather than making us queue unbounded work on its behalf.
MAX_INFLIGHT_REQUESTS_PER_PEER: Final = 64

SendReliable = Callable[[str, Message], None]  # raises PeerUnavailable / SendQueueFull


class Dispatcher:
    """Handler tables, request futures and peer-event listeners of one transport."""

    def __init__(self, send_reliable: SendReliable, spawn: Callable[[Any], asyncio.Task[Any]]) -> None:
        self._send_reliable = send_reliable
        self._spawn = spawn
        self._handlers: dict[type[Message], MessageHandler] = {}
        self._app: dict[int, AppHandler] = {}
        self._req: dict[int, RequestHandler] = {}
        self._listeners: list[EventListener] = []
        self._pending: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self._inflight: dict[str, int] = {}
        self._next_id = 1

    # --- registration -------------------------------------------------------------------------

    def register_handler(self, msg_type: type[Message], handler: MessageHandler) -> None:
        if msg_type in (AppMessage, AppRequest, AppResponse):
            raise LocalProtocolError("use register_app_handler / register_request_handler for app messages")
        if msg_type in self._handlers:
            raise LocalProtocolError(f"a handler for {msg_type.__name__} is already registered")
        self._handlers[msg_type] = handler

    def register_app_handler(self, kind: int, handler: AppHandler) -> None:
        if kind in self._app:
            raise LocalProtocolError(f"an app handler for kind {kind} is already registered")
        self._app[kind] = handler

    def register_request_handler(self, kind: int, handler: RequestHandler) -> None:
        if kind in self._req:
            raise LocalProtocolError(f"a request handler for kind {kind} is already registered")
        self._req[kind] = handler

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def emit(self, event: PeerEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    # --- requests -----------------------------------------------------------------------------

    async def request(self, node_id: str, kind: int, payload: Any, timeout_s: float) -> Any:
        if len(self._pending) >= MAX_PENDING_REQUESTS:
            raise SendQueueFull(f"{MAX_PENDING_REQUESTS} requests already pending")
        rid = self._next_id
        self._next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        key = (node_id, rid)
        self._pending[key] = fut
        try:
            self._send_reliable(node_id, AppRequest(rid, kind, payload))
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError as exc:
            raise RequestTimeout(f"request kind {kind} to {node_id} got no answer in {timeout_s} s") from exc
        finally:
            self._pending.pop(key, None)

    def fail_pending(self, node_id: str, reason: str) -> None:
        """The connection to ``node_id`` is gone: its outstanding requests fail now."""
        for (peer, _rid), fut in list(self._pending.items()):
            if peer == node_id and not fut.done():
                fut.set_exception(PeerUnavailable(f"connection to {node_id} closed: {reason}"))

    # --- incoming -----------------------------------------------------------------------------

    async def dispatch(self, peer: str, msg: Message) -> None:
        """Handle one message of a verified peer. RemoteProtocolError means: penalise the peer."""
        if isinstance(msg, AppResponse):
            fut = self._pending.get((peer, msg.request_id))
            if fut is not None and not fut.done():
                if msg.ok:
                    fut.set_result(msg.payload)
                else:
                    fut.set_exception(RequestFailed(f"{peer}: {msg.payload}"))
            return  # a late answer to a timed-out request is not the peer's fault
        if isinstance(msg, AppRequest):
            self._start_request(peer, msg)
            return
        if isinstance(msg, AppMessage):
            app = self._app.get(msg.kind)
            if app is None:
                log.debug("no handler for app message kind %d from %s", msg.kind, peer)
                return
            res = app(peer, msg.payload)
        else:
            handler = self._handlers.get(type(msg))
            if handler is None:
                log.debug("no handler for %s from %s", type(msg).__name__, peer)
                return
            res = handler(peer, msg)
        if inspect.isawaitable(res):
            await res

    def _start_request(self, peer: str, req: AppRequest) -> None:
        handler = self._req.get(req.kind)
        if handler is None:
            self._answer(peer, AppResponse(req.request_id, False, f"no handler for request kind {req.kind}"))
            return
        if self._inflight.get(peer, 0) >= MAX_INFLIGHT_REQUESTS_PER_PEER:
            self._answer(peer, AppResponse(req.request_id, False, "busy: too many requests in flight"))
            return
        self._inflight[peer] = self._inflight.get(peer, 0) + 1
        self._spawn(self._serve(peer, req, handler))

    async def _serve(self, peer: str, req: AppRequest, handler: RequestHandler) -> None:
        try:
            try:
                result = await handler(peer, req.payload)
                encode(result)  # a non-encodable answer is our bug; report it as an error
                resp = AppResponse(req.request_id, True, result)
            except RemoteProtocolError as exc:
                resp = AppResponse(req.request_id, False, f"bad request: {exc}")
            except EncodingError as exc:
                log.error("request handler for kind %d returned a non-encodable value: %s", req.kind, exc)
                resp = AppResponse(req.request_id, False, "internal error")
            except Exception as exc:
                # The handler belongs to another layer; its failure is reported to the caller as a
                # typed error and logged here with the traceback, and the connection stays up.
                log.exception("request handler for kind %d failed", req.kind)
                resp = AppResponse(req.request_id, False, f"handler failed: {type(exc).__name__}")
            self._answer(peer, resp)
        finally:
            self._inflight[peer] -= 1
            if not self._inflight[peer]:
                del self._inflight[peer]

    def _answer(self, peer: str, resp: AppResponse) -> None:
        try:
            self._send_reliable(peer, resp)
        except (PeerUnavailable, SendQueueFull) as exc:
            log.info("could not answer request %d of %s: %s", resp.request_id, peer, exc)


class DispatchingTransport:
    """The handler-registration and request half of :class:`~p2p.api.PeerTransport`, shared by
    both transports: each holds a :class:`Dispatcher` in ``_dispatcher`` and delegates to it."""

    _dispatcher: Dispatcher

    async def request(self, node_id: str, kind: int, payload: Any, timeout_s: float) -> Any:
        """Send an AppRequest and await the peer's answer (see :mod:`p2p.api` for the errors)."""
        return await self._dispatcher.request(node_id, kind, payload, timeout_s)

    def register_handler(self, msg_type: type[Message], handler: MessageHandler) -> None:
        self._dispatcher.register_handler(msg_type, handler)

    def register_app_handler(self, kind: int, handler: AppHandler) -> None:
        self._dispatcher.register_app_handler(kind, handler)

    def register_request_handler(self, kind: int, handler: RequestHandler) -> None:
        self._dispatcher.register_request_handler(kind, handler)

    def add_listener(self, listener: EventListener) -> None:
        self._dispatcher.add_listener(listener)
