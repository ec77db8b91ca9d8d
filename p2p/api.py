"""The interface the node (and gossip) use to talk to peers, shared by both transports.

:class:`~p2p.transport.Transport` (asyncio, mutual TLS) and :class:`~p2p.memory.MemoryTransport`
(in-process, for simulations) both satisfy :class:`PeerTransport`, so code written against it runs
unchanged over either. Everything here is types: no logic, no I/O.

Delivery semantics:

* ``send`` is best effort (returns ``False`` when the peer is not connected or the message was
  dropped by the bounded queue); gossip and Raft tolerate loss and retry on their own schedule.
* ``request`` is never dropped silently: it returns the peer's answer or raises
  :class:`~p2p.errors.PeerUnavailable`, :class:`~p2p.errors.SendQueueFull`,
  :class:`~p2p.errors.RequestTimeout` or :class:`~p2p.errors.RequestFailed`.
* Both raise :class:`~p2p.errors.LocalProtocolError` for a message that cannot be encoded
  canonically or exceeds the frame limit: that is the caller's bug, not a network condition.
* Handlers of one peer run in the order its messages arrived. A handler that raises
  :class:`~p2p.errors.RemoteProtocolError` declares the peer misbehaving: it is disconnected and
  banned for a while.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from p2p.handshake import PeerInfo
from p2p.messages import Message

__all__ = [
    "AppHandler",
    "EventListener",
    "MessageHandler",
    "PeerConnected",
    "PeerDisconnected",
    "PeerEvent",
    "PeerTransport",
    "RequestHandler",
]

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class PeerConnected:
    info: PeerInfo


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    node_id: str
    reason: str


PeerEvent = PeerConnected | PeerDisconnected
EventListener = Callable[[PeerEvent], None]
# handler(peer node id, message); may be a coroutine function (awaited before the next message).
MessageHandler = Callable[[str, Any], Awaitable[None] | None]
# handler(peer node id, payload) for AppMessage of one kind.
AppHandler = Callable[[str, Any], Awaitable[None] | None]
# handler(peer node id, payload) -> response payload (a canonical value) for AppRequest of one kind.
RequestHandler = Callable[[str, Any], Awaitable[Any]]


class PeerTransport(Protocol):
    """What the node and the gossip service need from a transport."""

    @property
    def node_id(self) -> str: ...

    @property
    def listen_port(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def add_peer(self, node_id: str, address: str) -> None: ...

    def remove_peer(self, node_id: str) -> None: ...

    def connected_peers(self) -> list[str]: ...

    def peer_info(self, node_id: str) -> PeerInfo | None: ...

    def send(self, node_id: str, msg: Message) -> bool: ...

    def broadcast(self, msg: Message, peers: Iterable[str] | None = None) -> int: ...

    async def request(self, node_id: str, kind: int, payload: Any, timeout_s: float) -> Any: ...

    def register_handler(self, msg_type: type[Message], handler: MessageHandler) -> None: ...

    def register_app_handler(self, kind: int, handler: AppHandler) -> None: ...

    def register_request_handler(self, kind: int, handler: RequestHandler) -> None: ...

    def add_listener(self, listener: EventListener) -> None: ...

    def penalise(self, node_id: str, reason: str) -> None: ...

    def refresh_trust(self) -> None:
        """Re-read the membership's trust anchors (CAs, CRLs) after a channel config change."""
        ...
