"""Typed errors of the P2P layer, saying whose fault a failure is.

As in h11: :class:`LocalProtocolError` is our own misuse of a protocol object (a bug on this
side: sending a message in a state that does not allow it, a frame too big to send);
:class:`RemoteProtocolError` is the peer's fault (malformed or oversize frames, an unexpected
message, a bad handshake signature) and always ends the connection, usually with a temporary ban.

This module holds no logic and imports nothing of the project.
"""

from __future__ import annotations

__all__ = [
    "HandshakeError",
    "LocalProtocolError",
    "P2PError",
    "PeerUnavailable",
    "RemoteProtocolError",
    "RequestFailed",
    "RequestTimeout",
    "SendQueueFull",
    "UnexpectedPeer",
]


class P2PError(Exception):
    """Base class of every error the P2P layer raises on purpose."""


class LocalProtocolError(P2PError):
    """We used a protocol object wrongly (our bug), e.g. sent application data before the handshake."""


class RemoteProtocolError(P2PError):
    """The peer broke the protocol; the connection must be closed and the peer may be banned."""


class HandshakeError(RemoteProtocolError):
    """The peer's hello does not check out: wrong network, version, signature or certificate claims."""


class UnexpectedPeer(HandshakeError):
    """We dialled one node and reached another (a stale or false address), which is no offence."""


class PeerUnavailable(P2PError):
    """There is no open connection to the named peer (or it is banned)."""


class SendQueueFull(P2PError):
    """A request/response message could not be queued: the peer's send queue is at its limit."""


class RequestTimeout(P2PError):
    """A request got no response within its timeout."""


class RequestFailed(P2PError):
    """The peer answered a request with an error (no handler, handler raised, bad request)."""
