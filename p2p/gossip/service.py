"""The asyncio driver of :class:`~p2p.gossip.core.GossipCore` over a :class:`~p2p.api.PeerTransport`.

It feeds the core the transport's peer events and gossip messages with the injected clock's unix
milliseconds (the core judges certificate validity with them), ticks it every ``tick_interval_s``
of that clock, and carries out what the core returns: sends, penalties (the transport
disconnects and bans) and newly discovered members (dialled when ``connect_discovered``).

Usage (the node)::

    svc = GossipService(transport, core)
    await svc.start()                       # after transport.start()
    svc.publish_block(channel, number, data)   # a block the local orderer cut and we stored
    digest = svc.disseminate_private("permits", blob)
    await svc.stop()

All protocol decisions are the core's; this module only moves its inputs and outputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from p2p.api import PeerConnected, PeerEvent, PeerTransport
from p2p.clock import Clock, SystemClock
from p2p.gossip.common import Discovered, Output, Penalise, Send
from p2p.gossip.core import GOSSIP_MESSAGES, GossipCore
from p2p.messages import Message

__all__ = ["GossipService"]

log = logging.getLogger(__name__)


class GossipService:
    def __init__(
        self,
        transport: PeerTransport,
        core: GossipCore,
        *,
        clock: Clock | None = None,
        tick_interval_s: float = 0.05,
        connect_discovered: bool = True,
    ) -> None:
        self.transport = transport
        self.core = core
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._tick_s = tick_interval_s
        self._connect_discovered = connect_discovered
        self._task: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        assert not self._started, "start() called twice"
        self._started = True
        for t in GOSSIP_MESSAGES:
            self.transport.register_handler(t, self._on_message)
        self.transport.add_listener(self._on_event)
        for peer in self.transport.connected_peers():
            info = self.transport.peer_info(peer)
            if info is not None:
                self._execute(self.core.peer_up(info.node_id, info.org, info.channels))
        self._task = asyncio.create_task(self._tick_loop(), name=f"gossip-{self.core.node_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- inputs -------------------------------------------------------------------------------

    def _on_event(self, ev: PeerEvent) -> None:
        if isinstance(ev, PeerConnected):
            self._execute(self.core.peer_up(ev.info.node_id, ev.info.org, ev.info.channels))
        else:
            self.core.peer_down(ev.node_id)

    def _on_message(self, peer: str, msg: Message) -> None:
        self._execute(self.core.handle(self._clock.now_ms(), peer, msg))

    async def _tick_loop(self) -> None:
        while True:
            self._execute(self.core.tick(self._clock.now_ms()))
            await self._clock.sleep(self._tick_s)

    # --- local actions ------------------------------------------------------------------------

    def publish_block(self, channel: str, number: int, data: bytes) -> None:
        self._execute(self.core.publish_block(channel, number, data))

    def disseminate_private(self, collection: str, blob: bytes) -> bytes:
        digest, outputs = self.core.disseminate_private(collection, blob)
        self._execute(outputs)
        return digest

    # --- outputs ------------------------------------------------------------------------------

    def _execute(self, outputs: list[Output]) -> None:
        for o in outputs:
            if isinstance(o, Send):
                self.transport.send(o.peer, o.msg)
            elif isinstance(o, Penalise):
                log.warning("%s: penalising %s: %s", self.core.node_id, o.peer, o.reason)
                self.transport.penalise(o.peer, o.reason)
            elif isinstance(o, Discovered):
                if self._connect_discovered and o.address and o.node_id not in self.transport.connected_peers():
                    with contextlib.suppress(ValueError):  # a malformed advertised address is not dialled
                        self.transport.add_peer(o.node_id, o.address)
            else:  # pragma: no cover - the Output union is closed
                raise AssertionError(f"unknown gossip output {o!r}")

    def stats(self) -> dict[str, Any]:
        return {
            "heights": self.core.heights(),
            "peers": sorted(self.core.peers),
            "alive": self.core.membership.alive_members(),
        }
