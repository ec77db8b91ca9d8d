"""An in-process transport with the interface of :class:`~p2p.transport.Transport`, for simulations.

:class:`MemoryNetwork` connects :class:`MemoryTransport` instances by node id. Links form when
one side ``add_peer``s a started peer (as a dial would), messages cross a real encode/decode of the
framing (so only wire-representable messages pass), and each transport delivers to its handlers
in arrival order from one task. The network can cut and heal links to simulate partitions.

There is no TLS and no MSP check here: identities are whatever the test says (``org`` and
``channels`` per node). Queues are bounded like the real transport's: ``send`` drops (returns
False) beyond :data:`~p2p.transport.SEND_QUEUE_MAX_MESSAGES` undelivered messages per receiver.

Never used by the node in production; never opens sockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any

from p2p.api import PeerConnected, PeerDisconnected
from p2p.dispatch import Dispatcher, DispatchingTransport
from p2p.errors import PeerUnavailable, RemoteProtocolError, SendQueueFull
from p2p.framing import FrameDecoder, encode_frame
from p2p.handshake import PeerInfo
from p2p.messages import Message
from p2p.transport import SEND_QUEUE_MAX_MESSAGES

__all__ = ["MemoryNetwork", "MemoryTransport"]

log = logging.getLogger(__name__)


class MemoryNetwork:
    """The set of in-memory transports and the links between them."""

    def __init__(self) -> None:
        self.nodes: dict[str, MemoryTransport] = {}
        self.links: set[frozenset[str]] = set()
        self.cut: set[frozenset[str]] = set()  # pairs that may not link (a partition)

    def linked(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self.links

    def _link(self, a: str, b: str) -> None:
        pair = frozenset((a, b))
        if pair in self.links or pair in self.cut or a == b:
            return
        ta, tb = self.nodes.get(a), self.nodes.get(b)
        if ta is None or tb is None or not (ta.running and tb.running):
            return
        if ta.is_banned(b) or tb.is_banned(a):
            return
        self.links.add(pair)
        ta._emit(PeerConnected(tb._info_for(ta)))
        tb._emit(PeerConnected(ta._info_for(tb)))

    def _unlink(self, a: str, b: str, reason: str) -> None:
        pair = frozenset((a, b))
        if pair not in self.links:
            return
        self.links.discard(pair)
        for x, y in ((a, b), (b, a)):
            t = self.nodes.get(x)
            if t is not None:
                t._dispatcher.fail_pending(y, reason)
                t._emit(PeerDisconnected(y, reason))

    def partition(self, a: str, b: str) -> None:
        """Cut the link between ``a`` and ``b`` and keep it cut until :meth:`heal`."""
        self.cut.add(frozenset((a, b)))
        self._unlink(a, b, "partitioned")

    def heal(self, a: str, b: str) -> None:
        self.cut.discard(frozenset((a, b)))
        for x, y in ((a, b), (b, a)):
            t = self.nodes.get(x)
            if t is not None and y in t._wanted:
                self._link(x, y)


class MemoryTransport(DispatchingTransport):
    """A :class:`~p2p.api.PeerTransport` inside one process."""

    def __init__(
        self, network: MemoryNetwork, node_id: str, org: str, channels: Iterable[str], address: str = ""
    ) -> None:
        self._net = network
        self._node_id = node_id
        self.org = org
        self.channels = tuple(channels)
        self.address = address or f"mem:{node_id}"
        self.running = False
        self._wanted: set[str] = set()
        self._bans: set[str] = set()
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dispatcher = Dispatcher(self._send_reliable, self._spawn)

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def listen_port(self) -> int:
        return 0

    async def start(self) -> None:
        self._net.nodes[self._node_id] = self
        self.running = True
        self._task = asyncio.create_task(self._deliver_loop(), name=f"mem-{self._node_id}")
        for peer in sorted(self._wanted):
            self._net._link(self._node_id, peer)
        for other in list(self._net.nodes.values()):  # peers that were waiting for us
            if self._node_id in other._wanted:
                self._net._link(other.node_id, self._node_id)

    async def stop(self) -> None:
        self.running = False
        for pair in [p for p in self._net.links if self._node_id in p]:
            (other,) = pair - {self._node_id}
            self._net._unlink(self._node_id, other, "peer stopped")
        for task in [self._task, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._task, *self._tasks] if t is not None], return_exceptions=True)
        self._net.nodes.pop(self._node_id, None)

    def add_peer(self, node_id: str, address: str) -> None:
        self._wanted.add(node_id)
        if self.running:
            self._net._link(self._node_id, node_id)

    def remove_peer(self, node_id: str) -> None:
        self._wanted.discard(node_id)
        self._net._unlink(self._node_id, node_id, "peer removed")

    def connected_peers(self) -> list[str]:
        return sorted(next(iter(p - {self._node_id})) for p in self._net.links if self._node_id in p)

    def peer_info(self, node_id: str) -> PeerInfo | None:
        other = self._net.nodes.get(node_id)
        if other is None or not self._net.linked(self._node_id, node_id):
            return None
        return other._info_for(self)

    def _info_for(self, viewer: MemoryTransport) -> PeerInfo:
        shared = tuple(c for c in self.channels if c in viewer.channels)
        return PeerInfo(self._node_id, self.org, shared, self.address, None)

    def send(self, node_id: str, msg: Message) -> bool:
        other = self._net.nodes.get(node_id)
        if other is None or not self._net.linked(self._node_id, node_id):
            return False
        if len(other._inbox) >= SEND_QUEUE_MAX_MESSAGES:
            return False
        other._inbox.append((self._node_id, encode_frame(msg)))
        other._wakeup.set()
        return True

    def _send_reliable(self, node_id: str, msg: Message) -> None:
        other = self._net.nodes.get(node_id)
        if other is None or not self._net.linked(self._node_id, node_id):
            raise PeerUnavailable(f"not connected to {node_id}")
        if len(other._inbox) >= SEND_QUEUE_MAX_MESSAGES:
            raise SendQueueFull(f"queue to {node_id} is full")
        other._inbox.append((self._node_id, encode_frame(msg)))
        other._wakeup.set()

    def broadcast(self, msg: Message, peers: Iterable[str] | None = None) -> int:
        targets = self.connected_peers() if peers is None else list(peers)
        return sum(self.send(p, msg) for p in targets)

    def refresh_trust(self) -> None:
        """Nothing to rebuild: in-memory links have no TLS contexts (membership is the network's)."""

    def penalise(self, node_id: str, reason: str) -> None:
        log.warning("%s: banning %s: %s", self._node_id, node_id, reason)
        self._bans.add(node_id)
        self._net._unlink(self._node_id, node_id, f"misbehaviour: {reason}")

    def is_banned(self, node_id: str) -> bool:
        return node_id in self._bans

    def _emit(self, ev: PeerConnected | PeerDisconnected) -> None:
        self._dispatcher.emit(ev)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver_loop(self) -> None:
        while True:
            if not self._inbox:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            src, frame = self._inbox.popleft()
            if not self._net.linked(self._node_id, src):
                continue  # sent before the link was cut
            dec = FrameDecoder()
            dec.receive_data(frame)
            msg = next(iter(dec))
            try:
                await self._dispatcher.dispatch(src, msg)
            except RemoteProtocolError as exc:
                self.penalise(src, str(exc))
