"""One peer connection's protocol state machine (sans-I/O), in the manner of h11.

Bytes in (:meth:`Connection.receive_data`), events out (:meth:`Connection.next_event`), messages
to bytes (:meth:`Connection.send`). The transitions are one table, :data:`TRANSITIONS`; a
(state, event) pair that is not in it is an error that closes the connection: a
:class:`RemoteProtocolError` if the peer caused it, a :class:`LocalProtocolError` if we did.

    START --send hello--> HELLO_SENT --recv hello (verified)--> OPEN
    START --recv hello (verified)--> HELLO_RECEIVED --send hello--> OPEN
    OPEN --send/recv message--> OPEN
    any --send/recv goodbye, end of stream--> CLOSED

Both sides send their hello at once after TLS, so either order of the first two steps happens.
The peer's hello is checked by the injected ``verify_hello`` (see :mod:`p2p.handshake`) before
any other message of the peer is looked at.

This module never does I/O, never reads the clock and holds no timers: keepalive and timeouts
live in the transport.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from p2p.errors import LocalProtocolError, RemoteProtocolError
from p2p.framing import MAX_FRAME_BYTES, NEED_DATA, FrameDecoder, NeedData, encode_frame
from p2p.handshake import PeerInfo
from p2p.messages import Goodbye, Hello, Message

__all__ = ["TRANSITIONS", "Connection", "ConnectionClosed", "Ev", "PeerVerified", "State"]


class State(Enum):
    START = "start"
    HELLO_SENT = "hello-sent"
    HELLO_RECEIVED = "hello-received"
    OPEN = "open"
    CLOSED = "closed"


class Ev(Enum):
    SEND_HELLO = "send-hello"
    RECV_HELLO = "recv-hello"
    SEND_MSG = "send-msg"
    RECV_MSG = "recv-msg"
    SEND_GOODBYE = "send-goodbye"
    RECV_GOODBYE = "recv-goodbye"
    RECV_EOF = "recv-eof"


_S, _E = State, Ev
TRANSITIONS: dict[tuple[State, Ev], State] = {
    (_S.START, _E.SEND_HELLO): _S.HELLO_SENT,
    (_S.START, _E.RECV_HELLO): _S.HELLO_RECEIVED,
    (_S.HELLO_SENT, _E.RECV_HELLO): _S.OPEN,
    (_S.HELLO_RECEIVED, _E.SEND_HELLO): _S.OPEN,
    (_S.OPEN, _E.SEND_MSG): _S.OPEN,
    (_S.OPEN, _E.RECV_MSG): _S.OPEN,
}
for _st in (_S.START, _S.HELLO_SENT, _S.HELLO_RECEIVED, _S.OPEN):
    for _ev in (_E.SEND_GOODBYE, _E.RECV_GOODBYE, _E.RECV_EOF):
        TRANSITIONS[(_st, _ev)] = _S.CLOSED


@dataclass(frozen=True, slots=True)
class PeerVerified:
    """The peer's hello checked out. Messages may flow once the state is OPEN."""

    info: PeerInfo


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer said goodbye or closed the stream between frames."""

    reason: str


Event = Message | PeerVerified | ConnectionClosed | NeedData


def _kind(msg: Message, *, sending: bool) -> Ev:
    if isinstance(msg, Hello):
        return Ev.SEND_HELLO if sending else Ev.RECV_HELLO
    if isinstance(msg, Goodbye):
        return Ev.SEND_GOODBYE if sending else Ev.RECV_GOODBYE
    return Ev.SEND_MSG if sending else Ev.RECV_MSG


class Connection:
    """The state of one connection; the transport owns the socket and feeds this object."""

    __slots__ = ("_decoder", "_verify", "peer", "state")

    def __init__(self, verify_hello: Callable[[Hello], PeerInfo], max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._verify = verify_hello
        self._decoder = FrameDecoder(max_frame_bytes)
        self.state = State.START
        self.peer: PeerInfo | None = None

    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN

    def _step(self, ev: Ev, *, local: bool) -> None:
        nxt = TRANSITIONS.get((self.state, ev))
        if nxt is None:
            was = self.state
            if local:
                raise LocalProtocolError(f"cannot {ev.value} in state {was.value}")
            self.state = State.CLOSED
            raise RemoteProtocolError(f"peer sent {ev.value} in state {was.value}")
        self.state = nxt

    def send(self, msg: Message) -> bytes:
        """The bytes that carry ``msg``; :class:`LocalProtocolError` if the state does not allow it."""
        data = encode_frame(msg)  # may raise LocalProtocolError before any state changes
        self._step(_kind(msg, sending=True), local=True)
        return data

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the stream; ``b""`` is end-of-stream."""
        if self.state is State.CLOSED:
            return  # late bytes after a close are ignored, as h11 ignores data after close
        self._decoder.receive_data(data)

    def next_event(self) -> Event:
        """The next event, or NEED_DATA. A :class:`RemoteProtocolError` means: close now."""
        if self.state is State.CLOSED:
            return ConnectionClosed("closed")
        try:
            msg = self._decoder.next_event()
            if isinstance(msg, NeedData):
                if self._decoder.at_eof:
                    self._step(Ev.RECV_EOF, local=False)
                    return ConnectionClosed("end of stream")
                return NEED_DATA
            kind = _kind(msg, sending=False)
            self._step(kind, local=False)
            if kind is Ev.RECV_HELLO:
                assert isinstance(msg, Hello)
                self.peer = self._verify(msg)  # HandshakeError is a RemoteProtocolError
                return PeerVerified(self.peer)
            if kind is Ev.RECV_GOODBYE:
                assert isinstance(msg, Goodbye)
                return ConnectionClosed(f"peer said goodbye: {msg.reason}")
            return msg
        except RemoteProtocolError:
            self.state = State.CLOSED
            raise
