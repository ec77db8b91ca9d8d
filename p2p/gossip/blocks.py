"""Block dissemination on one channel: push to a fan-out, pull anti-entropy, ordered delivery.

* **Push.** A new block (from the local orderer, or received by push and found valid and new) is
  sent to ``fanout`` random peers of the channel, never back to where it came from. A block is
  relayed only the first time it is accepted, so each block crosses each link at most a few times.
* **Pull (anti-entropy).** Every ``anti_entropy_interval_ms`` the node sends its height to its
  channel peers (Fabric's StateInfo). Peers ahead of us are then asked for the missing ranges by
  :class:`~p2p.gossip.state_transfer.StateTransfer`; this also heals any lost push.
* **Delivery.** Blocks reach the :class:`~p2p.gossip.common.BlockStore` strictly in order, each
  verified (:mod:`p2p.verify`) and linked to the previous one; pushed blocks that arrive ahead of
  the tip wait in a bounded buffer, verified when their turn comes.

An invalid block raises :class:`~p2p.verify.InvalidBlock` attributed to its sender, which the
core turns into a penalty. Sans-I/O: time is passed in; randomness comes from the injected RNG.
"""

from __future__ import annotations

import logging
import random

from p2p.gossip.common import BlockStore, GossipConfig, Output, Penalise, Send
from p2p.gossip.state_transfer import StateTransfer, serve_request
from p2p.messages import BlockBatch, BlockPush, BlockRequest
from p2p.verify import InvalidBlock, OrdererKeyResolver, VerifiedBlock, verify_block
from storage.model import GENESIS_PREVIOUS_HASH

__all__ = ["ChannelBlocks", "Offence"]

log = logging.getLogger(__name__)


class Offence(Exception):
    """An invalid block attributed to the peer that sent it (raised out of delivery)."""

    def __init__(self, peer: str, error: InvalidBlock) -> None:
        super().__init__(f"{peer}: {error}")
        self.peer = peer
        self.error = error


class ChannelBlocks:
    """Gossip state of one channel's blocks."""

    def __init__(
        self,
        channel: str,
        store: BlockStore,
        config: GossipConfig,
        rng: random.Random,
        resolve_key: OrdererKeyResolver,
    ) -> None:
        self.channel = channel
        self.store = store
        self._cfg = config
        self._rng = rng
        self._resolve = resolve_key
        self.next_number = store.height
        self.tip_hash = store.tip_hash if store.tip_hash is not None else GENESIS_PREVIOUS_HASH
        self.heights: dict[str, int] = {}  # peer -> announced height
        self.pending: dict[int, tuple[str, bytes]] = {}  # number -> (sender, data), pushed ahead of the tip
        self.transfer = StateTransfer(channel, config, rng, resolve_key)
        self.delivered = 0  # blocks handed to the store by gossip (statistics)

    # --- peers --------------------------------------------------------------------------------

    def forget_peer(self, peer: str) -> None:
        self.heights.pop(peer, None)
        self.transfer.drop_from(peer)
        for n in [n for n, (p, _) in self.pending.items() if p == peer]:
            del self.pending[n]

    def on_height(self, peer: str, height: int) -> None:
        self.heights[peer] = height

    # --- local blocks ---------------------------------------------------------------------------

    def resync(self) -> None:
        """Catch up with blocks the node stored by another path (its own orderer, say)."""
        if self.store.height > self.next_number:
            self.next_number = self.store.height
            tip = self.store.tip_hash
            self.tip_hash = tip if tip is not None else GENESIS_PREVIOUS_HASH
            for n in [n for n in self.pending if n < self.next_number]:
                del self.pending[n]

    def publish(self, number: int, data: bytes, peers: list[str]) -> list[Output]:
        """Push a block the node already stored (e.g. it is an orderer) to a fan-out of peers."""
        self.resync()
        return [Send(p, BlockPush(self.channel, number, data)) for p in self._sample(peers)]

    # --- messages -----------------------------------------------------------------------------

    def on_push(self, peer: str, msg: BlockPush, peers: list[str]) -> list[Output]:
        self.resync()
        self.heights[peer] = max(self.heights.get(peer, 0), msg.number + 1)
        if msg.number < self.next_number or msg.number in self.pending:
            return []  # already have it
        if msg.number >= self.next_number + self._cfg.pending_blocks_max:
            return []  # too far ahead: state transfer will fetch it in order
        self.pending[msg.number] = (peer, msg.data)
        accepted = self._advance()
        if msg.number not in {b.number for b in accepted}:
            return []
        targets = [p for p in peers if p != peer]
        return [Send(p, msg) for p in self._sample(targets)]

    def on_request(self, msg: BlockRequest) -> BlockBatch:
        return serve_request(self.store, msg, self._cfg.state_batch_blocks)

    def on_batch(self, peer: str, msg: BlockBatch) -> list[Output]:
        self.resync()
        blocks = self.transfer.on_batch(peer, msg, self.next_number)  # InvalidBlock propagates
        if blocks is None:
            return []
        if not blocks:
            self.heights[peer] = min(self.heights.get(peer, 0), msg.start)  # it had less than it said
        self._advance()
        return []

    def tick(self, now_ms: int, peers: list[str]) -> list[Output]:
        self.resync()
        self._advance()
        known = {p: h for p, h in self.heights.items() if p in peers}
        return self.transfer.plan(now_ms, self.next_number, known)

    # --- delivery -----------------------------------------------------------------------------

    def _advance(self) -> list[VerifiedBlock]:
        """Deliver every block that now continues the chain; penalties surface as InvalidBlock."""
        delivered: list[VerifiedBlock] = []
        while True:
            ready = self.transfer.take_ready(self.next_number)
            if ready is not None:
                sender, blocks = ready
                if blocks[0].header.previous_hash != self.tip_hash:
                    raise Offence(sender, InvalidBlock(blocks[0].number, "does not link to our tip"))
                self._deliver(blocks)
                delivered += blocks
                continue
            item = self.pending.pop(self.next_number, None)
            if item is None:
                break
            sender, data = item
            try:
                vb = verify_block(
                    data,
                    channel=self.channel,
                    number=self.next_number,
                    previous_hash=self.tip_hash,
                    resolve_key=self._resolve,
                )
            except InvalidBlock as exc:
                raise Offence(sender, exc) from exc
            self._deliver([vb])
            delivered.append(vb)
        return delivered

    def _deliver(self, blocks: list[VerifiedBlock]) -> None:
        self.store.deliver(blocks)
        self.next_number = blocks[-1].number + 1
        self.tip_hash = blocks[-1].hash
        self.delivered += len(blocks)
        for n in [n for n in self.pending if n < self.next_number]:
            del self.pending[n]

    def _sample(self, peers: list[str]) -> list[str]:
        ordered = sorted(peers)
        k = self._cfg.fanout
        return ordered if len(ordered) <= k else self._rng.sample(ordered, k)

    def penalty(self, offence: Offence) -> Penalise:
        self.forget_peer(offence.peer)
        return Penalise(offence.peer, str(offence.error))
