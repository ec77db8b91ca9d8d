"""Asyncio TCP transport with mutual TLS 1.3 between nodes: moves bytes, nothing more.

Usage (the node)::

    t = Transport(identity=ident, key=node_key, cert_pem=node_cert_pem, msp_provider=lambda: msp,
                  network_id="city", channels=("city",), listen_host="127.0.0.1", listen_port=0,
                  rng=random.Random(seed))
    t.register_app_handler(RAFT_KIND, on_raft)               # one-way messages of another layer
    t.register_request_handler(ENDORSE_KIND, endorse)        # async (peer, payload) -> payload
    t.add_listener(on_peer_event)                            # PeerConnected / PeerDisconnected
    await t.start()                                          # binds; t.listen_port is the real port
    t.add_peer("transport-node1", "127.0.0.1:7051")          # dialled with backoff until stopped
    t.send("transport-node1", AppMessage(RAFT_KIND, msg.to_wire()))   # -> bool, best effort
    answer = await t.request("transport-node1", ENDORSE_KIND, payload, timeout_s=5.0)
    await t.stop()

The full interface is :class:`p2p.api.PeerTransport`.

Connection set-up, in order:

1. TLS 1.3 with ``CERT_REQUIRED`` on both sides; the trust store is every member org's CA
   certificate (from ``msp_provider()``), so a certificate from a foreign CA fails the TLS
   handshake itself. Hostnames are not checked: peers are named by certificate CN, not DNS.
2. The peer certificate is validated in code with ``MSP.validate(..., roles={NODE})``, which
   also checks the org's CRLs (Python's ``ssl`` CRL support needs files and flags per CA; the MSP
   already has the CRLs). A revoked or non-node certificate is dropped here, before any
   application message of that peer is read.
3. Both sides send a signed hello (:mod:`p2p.handshake`); the state machine
   (:mod:`p2p.connection`) accepts nothing else first, and the hello must match the certificate.

One connection per peer pair: when both sides dial at once, the connection *initiated by the
lower node id* survives on both ends (each side computes the same answer), the other is closed.

Send queues are bounded per peer (:data:`SEND_QUEUE_MAX_MESSAGES`, :data:`SEND_QUEUE_MAX_BYTES`).
Drop policy: to make room, the *oldest droppable* queued messages (anything sent with ``send``:
gossip, Raft) are evicted. Requests, responses and pings are never evicted; if even after
eviction a message does not fit, ``send`` returns ``False`` and ``request`` raises
:class:`SendQueueFull`, so nothing that must arrive is lost silently.

Misbehaviour (a malformed or oversize frame, an unexpected message, a bad hello, a handler raising
:class:`RemoteProtocolError`) closes the connection and bans the peer's node id for
``ban_duration_s``. Keepalive: a ping every ``ping_interval_s``; a peer silent for
``keepalive_timeout_s`` is disconnected.

This module holds no protocol logic (that is in the sans-I/O modules) and never trusts a peer
before steps 1-3 have passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from crypto.msp import MSP, Identity, IdentityError, Role
from crypto.signing import PrivateKey
from p2p.api import PeerConnected, PeerDisconnected
from p2p.clock import Clock, SystemClock
from p2p.connection import Connection, ConnectionClosed, PeerVerified
from p2p.dispatch import Dispatcher, DispatchingTransport
from p2p.errors import PeerUnavailable, RemoteProtocolError, SendQueueFull, UnexpectedPeer
from p2p.framing import MAX_FRAME_BYTES, NeedData
from p2p.handshake import NONCE_BYTES, PeerInfo, make_hello, verify_hello
from p2p.messages import Goodbye, Message, Ping, Pong
from p2p.quietlog import RepeatGate
from p2p.tls import make_context

__all__ = [
    "BAN_DURATION_S",
    "MAX_HANDSHAKING",
    "READ_CHUNK_BYTES",
    "SEND_QUEUE_MAX_BYTES",
    "SEND_QUEUE_MAX_MESSAGES",
    "Transport",
    "TransportLimits",
    "parse_address",
]

log = logging.getLogger(__name__)

# Messages queued for one peer. Gossip bursts (a block push per new block plus membership and
# height exchanges) stay far below this; a peer that cannot keep up loses old gossip, not memory.
SEND_QUEUE_MAX_MESSAGES: Final = 1024
# Bytes queued for one peer: room for four full state-transfer batches (8 MiB each) in flight.
SEND_QUEUE_MAX_BYTES: Final = 32 * 1024 * 1024
# How much one read takes from the socket. Big enough that a batch arrives in few reads, small
# enough that the decoder buffer stays within one frame plus one chunk.
READ_CHUNK_BYTES: Final = 256 * 1024
# Inbound connections between TLS and a verified hello. Only member nodes get this far, and each
# needs one link; the bound stops a member with a stolen key from opening sockets without limit.
MAX_HANDSHAKING: Final = 64
# How long a misbehaving peer is refused. Long enough to stop a tight reconnect loop, short enough
# that a peer fixed by its operator rejoins without help.
BAN_DURATION_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """Timers and bounds; tests shorten the timers."""

    send_queue_max_messages: int = SEND_QUEUE_MAX_MESSAGES
    send_queue_max_bytes: int = SEND_QUEUE_MAX_BYTES
    max_frame_bytes: int = MAX_FRAME_BYTES
    handshake_timeout_s: float = 10.0  # TLS + hello; a peer slower than this is not worth waiting for
    ping_interval_s: float = 5.0
    keepalive_timeout_s: float = 20.0  # four missed pings
    dial_backoff_initial_s: float = 0.1
    dial_backoff_max_s: float = 10.0
    ban_duration_s: float = BAN_DURATION_S
    close_timeout_s: float = 2.0  # how long an orderly close waits for the goodbye to flush


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 as ``"[::1]:7051"``) to ``(host, port)``; ``ValueError`` if malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad peer address {address!r}: expected host:port")
    return host.strip("[]"), int(port)


class _HandlerFailed(Exception):
    """A local message handler raised something other than RemoteProtocolError."""


class _Link:
    """One verified TLS connection to a peer: its queue, its tasks, its liveness."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection, outbound: bool):
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.outbound = outbound
        self.info: PeerInfo | None = None
        self.queue: deque[tuple[bytes, bool]] = deque()  # (frame, droppable)
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.last_recv = 0.0
        self.closed = False
        self.closed_reason = "connection closed"
        self.tasks: list[asyncio.Task[Any]] = []

    @property
    def node_id(self) -> str:
        assert self.info is not None
        return self.info.node_id


class Transport(DispatchingTransport):
    """The asyncio shell around :class:`~p2p.connection.Connection`; see the module docstring."""

    def __init__(
        self,
        *,
        identity: Identity,
        key: PrivateKey,
        cert_pem: bytes,
        msp_provider: Callable[[], MSP],
        network_id: str,
        channels: Iterable[str],
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        advertise_address: str | None = None,
        rng: random.Random,
        clock: Clock | None = None,
        limits: TransportLimits = TransportLimits(),
    ) -> None:
        if identity.role is not Role.NODE:
            raise ValueError(f"{identity.id} is a {identity.role.value}, a transport needs a node identity")
        self._identity = identity
        self._key = key
        self._cert_pem = cert_pem
        self._msp_provider = msp_provider
        self._network_id = network_id
        self._channels = tuple(channels)
        self._host = listen_host
        self._port = listen_port
        self._advertise = advertise_address
        self._rng = rng
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.limits = limits
        self._server: asyncio.Server | None = None
        self._links: dict[str, _Link] = {}
        self._wanted: dict[str, str] = {}  # node id -> address we keep dialling
        self._dialers: dict[str, asyncio.Task[None]] = {}
        self._bans: dict[str, float] = {}  # node id -> clock.now() when the ban ends
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._stopping = False
        self._started = False
        self._handshaking = 0
        self._server_ctx: ssl.SSLContext | None = None
        self._client_ctx: ssl.SSLContext | None = None
        self._dispatcher = Dispatcher(self._send_reliable, self._spawn)
        self._refusals = RepeatGate()  # a refused peer redials every few seconds: warn once

    # --- public API ---------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._identity.name

    @property
    def listen_port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return self._advertise or f"{self._host}:{self._port}"

    async def start(self) -> None:
        """Build the TLS contexts and bind the listener (port 0 picks a free port)."""
        assert not self._started, "start() called twice"
        self._started = True
        self.refresh_trust()
        assert self._server_ctx is not None
        self._server = await asyncio.start_server(
            self._on_inbound,
            self._host,
            self._port,
            ssl=self._server_ctx,
            ssl_handshake_timeout=self.limits.handshake_timeout_s,
            limit=READ_CHUNK_BYTES,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("%s listening on %s:%d", self.node_id, self._host, self._port)
        for node_id in sorted(self._wanted):  # peers added before start()
            self._dialers[node_id] = asyncio.create_task(self._dial_loop(node_id), name=f"dial-{node_id}")

    async def stop(self) -> None:
        """Orderly shutdown: stop dialling and listening, say goodbye to every peer, await all tasks."""
        if self._stopping:
            return
        self._stopping = True
        if self._server is not None:
            self._server.close()
        # Goodbyes first (the dial loops see _stopping and end), then cancel what is left.
        await asyncio.gather(*[self._close_link(link, "shutting down") for link in list(self._links.values())])
        for task in list(self._dialers.values()):
            task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._dialers.values(), return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), self.limits.close_timeout_s)

    def refresh_trust(self) -> None:
        """Rebuild the TLS contexts from the current MSP (call after a config change adds an org)."""
        cas = [org.ca_cert_der for org in self._msp_provider().orgs.values()]
        self._server_ctx = make_context(server=True, cert_pem=self._cert_pem, key=self._key, ca_ders=cas)
        self._client_ctx = make_context(server=False, cert_pem=self._cert_pem, key=self._key, ca_ders=cas)

    def add_peer(self, node_id: str, address: str) -> None:
        """Keep a connection to ``node_id`` at ``address``, dialling with backoff while it is down."""
        parse_address(address)
        if node_id == self.node_id:
            return
        self._wanted[node_id] = address
        if self._started and not self._stopping and node_id not in self._dialers:
            self._dialers[node_id] = asyncio.create_task(self._dial_loop(node_id), name=f"dial-{node_id}")

    def remove_peer(self, node_id: str) -> None:
        """Stop dialling ``node_id`` and close any connection to it."""
        self._wanted.pop(node_id, None)
        task = self._dialers.pop(node_id, None)
        if task is not None:
            task.cancel()
        link = self._links.get(node_id)
        if link is not None:
            self._spawn(self._close_link(link, "peer removed"))

    def connected_peers(self) -> list[str]:
        return sorted(self._links)

    def peer_info(self, node_id: str) -> PeerInfo | None:
        link = self._links.get(node_id)
        return link.info if link is not None else None

    def send(self, node_id: str, msg: Message) -> bool:
        """Queue ``msg`` for ``node_id``, best effort (see the drop policy). False if not queued."""
        link = self._links.get(node_id)
        if link is None or link.closed:
            return False
        return self._enqueue(link, link.conn.send(msg), droppable=True)

    def broadcast(self, msg: Message, peers: Iterable[str] | None = None) -> int:
        """Send ``msg`` to ``peers`` (default: all connected); the number queued."""
        targets = list(self._links) if peers is None else list(peers)
        return sum(self.send(p, msg) for p in targets)

    def penalise(self, node_id: str, reason: str) -> None:
        """Disconnect and ban ``node_id`` for ``ban_duration_s`` (a misbehaving peer)."""
        log.warning("%s: banning %s for %.0f s: %s", self.node_id, node_id, self.limits.ban_duration_s, reason)
        self._bans[node_id] = self._clock.now() + self.limits.ban_duration_s
        link = self._links.get(node_id)
        if link is not None:
            self._spawn(self._close_link(link, f"misbehaviour: {reason}"))

    def is_banned(self, node_id: str) -> bool:
        until = self._bans.get(node_id)
        if until is None:
            return False
        if self._clock.now() >= until:
            del self._bans[node_id]
            return False
        return True

    async def wait_connected(self, node_ids: Iterable[str], timeout_s: float) -> None:
        """Wait until every one of ``node_ids`` is connected; TimeoutError otherwise."""
        want = set(node_ids)
        async with asyncio.timeout(timeout_s):
            while not want <= self._links.keys():
                self._changed.clear()
                await self._changed.wait()

    # --- TLS ----------------------------------------------------------------------------------

    def _validate_peer_cert(self, writer: asyncio.StreamWriter) -> Identity:
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        if not der:
            raise IdentityError("peer presented no certificate")
        return self._msp_provider().validate(der, now=self._clock.now_ms() // 1000, roles={Role.NODE})

    # --- connection set-up --------------------------------------------------------------------

    async def _dial_loop(self, node_id: str) -> None:
        attempt = 0
        while not self._stopping and node_id in self._wanted:
            if node_id in self._links or self.is_banned(node_id):
                self._changed.clear()
                # Re-check on any change, and at least once a second for ban expiry.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 1.0)
                continue
            host, port = parse_address(self._wanted[node_id])
            started = self._clock.now()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        host, port, ssl=self._client_ctx, server_hostname=host, limit=READ_CHUNK_BYTES
                    ),
                    self.limits.handshake_timeout_s,
                )
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                log.debug("%s: dial %s at %s:%d failed: %s", self.node_id, node_id, host, port, exc)
            else:
                await self._run_link(reader, writer, outbound=True, expected=node_id)
                if self._clock.now() - started > self.limits.keepalive_timeout_s:
                    attempt = 0  # the link lived a while: dial the next one promptly
            if self._stopping or node_id in self._links:
                continue
            # Exponential backoff with "equal jitter": half the window fixed, half random (seeded),
            # so peers that lost each other at the same moment do not redial in lock-step.
            window = min(self.limits.dial_backoff_max_s, self.limits.dial_backoff_initial_s * 2**attempt)
            attempt = min(attempt + 1, 30)
            await self._clock.sleep(window / 2 + self._rng.uniform(0, window / 2))

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping or self._handshaking >= MAX_HANDSHAKING:
            log.warning("%s: refusing inbound connection: %d handshakes in progress", self.node_id, self._handshaking)
            await self._abort(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._run_link(reader, writer, outbound=False, expected=None)
        finally:
            self._tasks.discard(task)

    async def _run_link(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, outbound: bool, expected: str | None
    ) -> None:
        """Validate, handshake, register and serve one connection until it closes."""
        peername = writer.get_extra_info("peername")
        try:
            ident = self._validate_peer_cert(writer)
        except IdentityError as exc:
            held = self._refusals.loud(str(exc), self._clock.now())
            if held is None:
                log.debug("%s: refusing connection from %s: %s", self.node_id, peername, exc)
            else:
                more = f" ({held} more refused since the last report)" if held else ""
                log.warning("%s: refusing connection from %s: %s%s", self.node_id, peername, exc, more)
            await self._abort(writer)
            return
        if self.is_banned(ident.name):
            log.info("%s: refusing banned peer %s", self.node_id, ident.name)
            await self._abort(writer)
            return
        self._handshaking += 1
        try:
            link = await self._handshake(reader, writer, ident, outbound=outbound, expected=expected)
        finally:
            self._handshaking -= 1
        if link is None:
            return
        if not self._register(link):
            await self._close_link(link, "duplicate connection", registered=False)
            return
        await self._serve(link)

    async def _handshake(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ident: Identity,
        *,
        outbound: bool,
        expected: str | None,
    ) -> _Link | None:
        """Exchange hellos; the open link, or None (connection already aborted)."""
        peername = writer.get_extra_info("peername")
        verifier = partial(self._verify_hello, ident=ident, expected=expected)
        link = _Link(reader, writer, Connection(verifier, self.limits.max_frame_bytes), outbound)
        link.last_recv = self._clock.now()
        try:
            hello = make_hello(
                key=self._key,
                node_id=self.node_id,
                org=self._identity.org,
                network_id=self._network_id,
                channels=self._channels,
                address=self.address,
                nonce=self._rng.randbytes(NONCE_BYTES),
                now_ms=self._clock.now_ms(),
            )
            writer.write(link.conn.send(hello))
            async with asyncio.timeout(self.limits.handshake_timeout_s):
                while not link.conn.is_open:
                    if not await self._read_some(link, until_open=True):
                        await self._abort(writer)
                        return None
        except UnexpectedPeer as exc:  # a stale address: not the reached node's fault
            log.info("%s: %s", self.node_id, exc)
            await self._abort(writer)
            return None
        except (RemoteProtocolError, TimeoutError) as exc:
            log.warning("%s: handshake with %s (%s) failed: %s", self.node_id, ident.name, peername, exc)
            if isinstance(exc, RemoteProtocolError):
                self._ban(ident.name)
            await self._abort(writer)
            return None
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            log.info("%s: connection to %s lost during handshake: %s", self.node_id, ident.name, exc)
            await self._abort(writer)
            return None
        return link

    def _verify_hello(self, hello: Any, *, ident: Identity, expected: str | None) -> PeerInfo:
        return verify_hello(
            hello,
            peer=ident,
            network_id=self._network_id,
            our_channels=self._channels,
            now_ms=self._clock.now_ms(),
            expected_node_id=expected,
        )

    def _register(self, link: _Link) -> bool:
        """Make ``link`` the connection to its peer, applying the simultaneous-dial tie-break."""
        peer = link.node_id
        existing = self._links.get(peer)
        if existing is not None and not existing.closed:
            winner_initiator = min(self.node_id, peer)
            existing_initiator = self.node_id if existing.outbound else peer
            if existing_initiator == winner_initiator:
                return False
            self._links.pop(peer)
            self._spawn(self._close_link(existing, "replaced by the tie-break winner", registered=False))
        self._links[peer] = link
        link.tasks.append(self._spawn(self._writer_loop(link)))
        link.tasks.append(self._spawn(self._keepalive_loop(link)))
        self._changed.set()
        assert link.info is not None
        log.info("%s: connected to %s (%s)", self.node_id, peer, "outbound" if link.outbound else "inbound")
        self._dispatcher.emit(PeerConnected(link.info))
        return True

    # --- serving ------------------------------------------------------------------------------

    async def _read_some(self, link: _Link, *, until_open: bool = False) -> bool:
        """Read one chunk and process the events it completes. False when the connection has ended."""
        data = await link.reader.read(READ_CHUNK_BYTES)
        link.last_recv = self._clock.now()
        link.conn.receive_data(data)
        return await self._pump(link, until_open=until_open)

    async def _pump(self, link: _Link, *, until_open: bool = False) -> bool:
        """Process buffered events. With ``until_open``, stop as soon as the handshake is done, so
        nothing the peer sent after its hello is dispatched before the link is registered."""
        while True:
            ev = link.conn.next_event()
            if isinstance(ev, NeedData):
                return True
            if isinstance(ev, PeerVerified):
                link.info = ev.info
                if until_open:
                    return True
                continue
            if isinstance(ev, ConnectionClosed):
                link.closed_reason = ev.reason
                return False
            await self._on_message(link, ev)

    async def _on_message(self, link: _Link, msg: Message) -> None:
        assert link.info is not None
        if isinstance(msg, Ping):
            self._enqueue(link, link.conn.send(Pong(msg.nonce)), droppable=False)
        elif not isinstance(msg, Pong):
            try:
                await self._dispatcher.dispatch(link.info.node_id, msg)
            except RemoteProtocolError:
                raise
            except Exception as exc:
                # A bug in another layer's handler: log it with its traceback and drop this link
                # (the peer did nothing wrong, so no ban); the dial loop and other links carry on.
                log.exception("%s: handler for %s failed", self.node_id, type(msg).__name__)
                raise _HandlerFailed(f"handler for {type(msg).__name__} failed: {exc!r}") from exc

    async def _serve(self, link: _Link) -> None:
        reason = "connection closed"
        try:
            if await self._pump(link):  # whatever arrived together with the hello
                while await self._read_some(link):
                    pass
            reason = link.closed_reason
        except RemoteProtocolError as exc:
            reason = f"protocol error: {exc}"
            self._ban(link.node_id)
            log.warning("%s: %s broke the protocol: %s", self.node_id, link.node_id, exc)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.IncompleteReadError) as exc:
            reason = f"connection lost: {exc!r}"
        except _HandlerFailed as exc:
            reason = str(exc)
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        finally:
            await self._close_link(link, reason)

    async def _writer_loop(self, link: _Link) -> None:
        try:
            while not link.closed:
                if not link.queue:
                    link.wakeup.clear()
                    await link.wakeup.wait()
                    continue
                while link.queue:
                    frame, _ = link.queue.popleft()
                    link.queued_bytes -= len(frame)
                    link.writer.write(frame)
                await link.writer.drain()
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            log.info("%s: write to %s failed: %s", self.node_id, link.node_id, exc)
            self._spawn(self._close_link(link, f"write failed: {exc!r}"))

    async def _keepalive_loop(self, link: _Link) -> None:
        nonce = 0
        while not link.closed:
            await self._clock.sleep(self.limits.ping_interval_s)
            if self._clock.now() - link.last_recv > self.limits.keepalive_timeout_s:
                self._spawn(self._close_link(link, "keepalive timeout"))
                return
            nonce += 1
            self._enqueue(link, link.conn.send(Ping(nonce)), droppable=False, force=True)

    def _enqueue(self, link: _Link, frame: bytes, *, droppable: bool, force: bool = False) -> bool:
        """Apply the drop policy; True if ``frame`` is queued.

        To make room, the oldest *droppable* frames (stale gossip) are evicted; frames that must
        not be dropped (requests, responses, pings) are never evicted. ``force`` skips the limits
        (keepalive pings and goodbyes are tiny and must go out).
        """
        lim = self.limits
        q = link.queue

        def fits() -> bool:
            return len(q) < lim.send_queue_max_messages and link.queued_bytes + len(frame) <= lim.send_queue_max_bytes

        if not force and not fits():
            kept: deque[tuple[bytes, bool]] = deque()
            while q and not fits():
                old, old_droppable = q.popleft()
                if old_droppable:
                    link.queued_bytes -= len(old)
                else:
                    kept.append((old, old_droppable))
            kept.extend(q)
            link.queue = q = kept
            if not fits():
                return False
        q.append((frame, droppable))
        link.queued_bytes += len(frame)
        link.wakeup.set()
        return True

    def _send_reliable(self, node_id: str, msg: Message) -> None:
        link = self._links.get(node_id)
        if link is None or link.closed:
            raise PeerUnavailable(f"not connected to {node_id}")
        if not self._enqueue(link, link.conn.send(msg), droppable=False):
            raise SendQueueFull(f"send queue to {node_id} is full of messages that may not be dropped")

    # --- closing ------------------------------------------------------------------------------

    def _ban(self, node_id: str) -> None:
        self._bans[node_id] = self._clock.now() + self.limits.ban_duration_s

    async def _abort(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), self.limits.close_timeout_s)

    async def _close_link(self, link: _Link, reason: str, *, registered: bool = True) -> None:
        if link.closed:
            return
        link.closed = True
        link.wakeup.set()
        current = asyncio.current_task()
        for task in link.tasks:
            if task is not current:
                task.cancel()
        if registered and link.info is not None and self._links.get(link.node_id) is link:
            del self._links[link.node_id]
            self._changed.set()
            log.info("%s: disconnected from %s: %s", self.node_id, link.node_id, reason)
            self._dispatcher.fail_pending(link.node_id, reason)
            self._dispatcher.emit(PeerDisconnected(link.node_id, reason))
        with contextlib.suppress(Exception):
            link.writer.write(link.conn.send(Goodbye(reason[:200])))
        await self._abort(link.writer)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task failed", self.node_id, exc_info=task.exception())
