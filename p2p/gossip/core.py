"""The gossip protocol of one node, sans-I/O: messages and ticks in, actions out.

:class:`GossipCore` composes membership (:mod:`.membership`), per-channel block dissemination and
state transfer (:mod:`.blocks`, :mod:`.state_transfer`) and private data (:mod:`.privdata`). Its
driver tells it which peers are connected (``peer_up`` / ``peer_down``), feeds it their messages
(``handle``) and the time (``tick``), and carries out what it returns: :class:`Send`,
:class:`Penalise` (disconnect and ban; the core has already forgotten the peer) and
:class:`Discovered` (a member worth connecting to).

Every message a peer sends is checked against what that peer may do: block messages only on
channels both serve and whose current configuration admits the peer (the injected ``is_member``:
a node cannot claim its way into a channel in its hello), private data only for collections both
orgs belong to. Verification failures
become penalties for the peer that sent the bad data, never exceptions out of the core.

The core never reads the clock, never touches sockets or disk (storage is reached through the
injected ``BlockStore`` / ``PrivateStore``), and never uses module-level ``random``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from crypto.signing import PrivateKey
from p2p.errors import RemoteProtocolError
from p2p.gossip.blocks import ChannelBlocks, Offence
from p2p.gossip.common import BlockStore, GossipConfig, Output, Penalise, PrivateStore, Send
from p2p.gossip.membership import CertValidator, Membership
from p2p.gossip.privdata import Collections, PrivateData
from p2p.messages import (
    Alive,
    BlockBatch,
    BlockPush,
    BlockRequest,
    Heights,
    Message,
    PvtInventory,
    PvtPush,
    PvtRequest,
)
from p2p.verify import OrdererKeyResolver

__all__ = ["GOSSIP_MESSAGES", "ChannelMember", "GossipCore", "PeerView"]

log = logging.getLogger(__name__)

# The message types the core handles; the driver registers exactly these with the transport.
GOSSIP_MESSAGES: tuple[type[Message], ...] = (
    Alive,
    Heights,
    BlockPush,
    BlockRequest,
    BlockBatch,
    PvtPush,
    PvtInventory,
    PvtRequest,
)


# Whether node ``node_id`` is a member of ``channel`` in the channel's current configuration.
ChannelMember = Callable[[str, str], bool]


def _everyone(channel: str, node_id: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class PeerView:
    node_id: str
    org: str
    channels: frozenset[str]


class GossipCore:
    """Gossip state and rules of one node (see the module docstring)."""

    def __init__(
        self,
        *,
        node_id: str,
        org: str,
        address: str,
        cert_der: bytes,
        key: PrivateKey,
        incarnation: int,
        stores: Mapping[str, BlockStore],
        resolve_key: OrdererKeyResolver,
        validate_cert: CertValidator,
        rng: random.Random,
        config: GossipConfig = GossipConfig(),
        private_store: PrivateStore | None = None,
        collections: Collections | None = None,
        is_member: ChannelMember = _everyone,
    ) -> None:
        self.node_id = node_id
        self._is_member = is_member
        self.org = org
        self.config = config
        self._rng = rng
        self.peers: dict[str, PeerView] = {}
        self.channels = {c: ChannelBlocks(c, s, config, rng, resolve_key) for c, s in stores.items()}
        self.membership = Membership(
            node_id=node_id,
            org=org,
            address=address,
            channels=tuple(sorted(stores)),
            cert_der=cert_der,
            key=key,
            incarnation=incarnation,
            validate_cert=validate_cert,
            rng=rng,
            config=config,
        )
        self.private: PrivateData | None = None
        if private_store is not None:
            self.private = PrivateData(org, private_store, collections or (lambda: {}), config, rng)
        self._next_heights_ms: int | None = None

    # --- peers --------------------------------------------------------------------------------

    def peer_up(self, node_id: str, org: str, channels: tuple[str, ...]) -> list[Output]:
        """A verified connection to ``node_id`` opened: tell it our heights at once."""
        self.peers[node_id] = PeerView(node_id, org, frozenset(channels) & self.channels.keys())
        return [self._heights_to(node_id)]

    def peer_down(self, node_id: str) -> None:
        self.peers.pop(node_id, None)
        for ch in self.channels.values():
            ch.forget_peer(node_id)

    def _shares(self, view: PeerView, channel: str) -> bool:
        """Both serve ``channel`` and its configuration admits the peer (checked on every use:
        membership changes with configuration blocks)."""
        return channel in view.channels and self._is_member(channel, view.node_id)

    def _channel_peers(self, channel: str) -> list[str]:
        return sorted(p for p, v in self.peers.items() if self._shares(v, channel))

    def _heights_to(self, peer: str) -> Send:
        view = self.peers[peer]
        shared = sorted(c for c in view.channels if self._shares(view, c))
        return Send(peer, Heights(tuple((c, self.channels[c].next_number) for c in shared)))

    def _penalise(self, peer: str, reason: str) -> list[Output]:
        log.warning("%s: penalising %s: %s", self.node_id, peer, reason)
        self.peer_down(peer)
        return [Penalise(peer, reason)]

    # --- input --------------------------------------------------------------------------------

    def handle(self, now_ms: int, peer: str, msg: Message) -> list[Output]:
        """Process one message of a connected peer."""
        view = self.peers.get(peer)
        if view is None:
            return []  # raced with peer_down
        try:
            return self._handle(now_ms, view, msg)
        except Offence as off:  # an invalid block surfaced in delivery: its sender is at fault
            return self._penalise(off.peer, str(off.error))
        except RemoteProtocolError as exc:  # InvalidBlock included: the sender is at fault
            return self._penalise(peer, str(exc))

    def _handle(self, now_ms: int, view: PeerView, msg: Message) -> list[Output]:
        peer = view.node_id
        if isinstance(msg, Alive):
            return self.membership.on_alive(now_ms, peer, msg, sorted(self.peers))
        if isinstance(msg, Heights):
            for c, h in msg.heights:
                if self._shares(view, c):
                    self.channels[c].on_height(peer, h)
            return self._plan(now_ms)
        if isinstance(msg, (BlockPush, BlockRequest, BlockBatch)):
            if not self._shares(view, msg.channel):
                return []  # not a channel we share (or no longer): ignore, never serve
            ch = self.channels[msg.channel]
            if isinstance(msg, BlockPush):
                return ch.on_push(peer, msg, self._channel_peers(msg.channel))
            if isinstance(msg, BlockRequest):
                return [Send(peer, ch.on_request(msg))]
            return ch.on_batch(peer, msg) + ch.tick(now_ms, self._channel_peers(msg.channel))
        if isinstance(msg, (PvtPush, PvtInventory, PvtRequest)):
            if self.private is None:
                return []
            if isinstance(msg, PvtPush):
                return self.private.on_push(peer, view.org, msg)
            if isinstance(msg, PvtInventory):
                return self.private.on_inventory(peer, view.org, msg)
            return self.private.on_request(peer, view.org, msg)
        return []

    def tick(self, now_ms: int) -> list[Output]:
        """Timers: alive messages, expiry, height exchange, state-transfer planning, reconciliation."""
        out = self.membership.tick(now_ms, sorted(self.peers))
        if self._next_heights_ms is None or now_ms >= self._next_heights_ms:
            self._next_heights_ms = now_ms + self.config.anti_entropy_interval_ms
            out += [self._heights_to(p) for p in sorted(self.peers) if self.peers[p].channels]
        try:
            out += self._plan(now_ms)
        except Offence as off:
            out += self._penalise(off.peer, str(off.error))
        if self.private is not None:
            out += self.private.tick(now_ms, {p: v.org for p, v in self.peers.items()})
        return out

    def _plan(self, now_ms: int) -> list[Output]:
        out: list[Output] = []
        for c, ch in self.channels.items():
            out += ch.tick(now_ms, self._channel_peers(c))
        return out

    # --- local actions ------------------------------------------------------------------------

    def publish_block(self, channel: str, number: int, data: bytes) -> list[Output]:
        """Push a block this node already stored (it came from the local orderer)."""
        return self.channels[channel].publish(number, data, self._channel_peers(channel))

    def disseminate_private(self, collection: str, blob: bytes) -> tuple[bytes, list[Output]]:
        """Store a private blob and push it to the authorised peers; return its digest."""
        if self.private is None:
            raise ValueError("this node has no private data store")
        return self.private.disseminate(collection, blob, {p: v.org for p, v in self.peers.items()})

    def heights(self) -> dict[str, int]:
        return {c: ch.next_number for c, ch in self.channels.items()}
