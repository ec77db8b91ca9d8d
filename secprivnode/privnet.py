"""Private data between nodes: acknowledged pushes at endorsement, pulls of what commit found missing.

Private write sets (see :mod:`storage.privstate`) move only between nodes of a collection's member
organisations, and :class:`p2p.gossip.privdata.PrivateData` is the gatekeeper for every receipt:

* **Push with acknowledgement** (``wire.PVT_PUSH``, at endorsement): the endorsing node sends each
  write set to at most ``max_peers`` connected member nodes and waits for ``required_peers``
  acknowledgements before its endorsement is answered (Fabric's requiredPeerCount /
  maxPeerCount). The receiver hands the blob to the gossip module's ``on_push``, which checks
  that both organisations are members, and acknowledges once it is stored.
* **Pull of missing data** (``wire.PVT_FETCH``): a VALID transaction whose write set a member
  node lacked at commit left a gap (:mod:`secprivnode.pipeline.privdata`). The reconciliation loop
  asks member peers for it, at most ``PULL_ATTEMPTS_MAX`` rounds per gap while the node runs;
  after that the gap stays recorded and is filled by gossip's periodic inventory exchange (which
  runs meanwhile as well) or retried after a restart.
* **Gossip store**: :class:`GossipPrivateStore` adapts every channel's transient store to the
  gossip core's ``PrivateStore``, so gossip's inventory/request reconciliation runs over it.

This module never sends private data to a node whose organisation is not a member of the
collection, and never stores data whose hashes the committed ledger does not vouch for as private
state (that check is the committer's).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from p2p.api import PeerTransport
from p2p.errors import P2PError
from p2p.gossip.privdata import PrivateData
from p2p.messages import PvtPush
from secprivnode import wire
from secprivnode.api import Overloaded
from secprivnode.pipeline.privdata import ChannelPrivateData, gossip_name, parse_gossip_name
from secprivnode.pipeline.tasks import cancel_and_wait
from storage.errors import StorageError
from storage.privstate import WriteSet

__all__ = [
    "PULL_ATTEMPTS_MAX",
    "PUSH_TIMEOUT_S",
    "RECONCILE_INTERVAL_S",
    "GossipPrivateStore",
    "PrivateNet",
    "member_peers",
]

log = logging.getLogger(__name__)

# One acknowledged push: storing a write set is one small LevelDB batch; this covers a busy peer.
PUSH_TIMEOUT_S = 5.0
# How often gaps are looked at. Commit never waits for a pull; a second is short enough that a
# member node that was down has its data soon after it catches up.
RECONCILE_INTERVAL_S = 1.0
# Pull rounds per gap while the node runs (bounded retries); later, gossip inventories fill it.
PULL_ATTEMPTS_MAX = 30
# Member peers asked per gap per round.
PULL_PEERS_MAX = 3


def member_peers(transport: PeerTransport, ch: ChannelPrivateData, ns: str, collection: str) -> list[str]:
    """Connected nodes of the collection's member organisations, as the channel config lists them
    (a node whose certificate's org differs from the config's is left out): never a non-member."""
    cfg = ch.config()
    c = None if cfg is None else cfg.collection(ns, collection)
    if cfg is None or c is None:
        return []
    out = []
    for peer in sorted(transport.connected_peers()):
        info, node = transport.peer_info(peer), cfg.node(peer)
        if info is not None and node is not None and info.org == node.org and info.org in c.member_orgs:
            out.append(peer)
    return out


class GossipPrivateStore:
    """Every channel's transient write sets as the gossip core's ``PrivateStore``."""

    def __init__(self, channels: Mapping[str, ChannelPrivateData]) -> None:
        self._channels = channels

    def collections(self) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        for ch in self._channels.values():
            out.update(ch.collections())
        return out

    def _where(self, name: str) -> tuple[ChannelPrivateData, str, str] | None:
        parsed = parse_gossip_name(name)
        if parsed is None or parsed[0] not in self._channels:
            return None
        return self._channels[parsed[0]], parsed[1], parsed[2]

    def has(self, digest: bytes) -> bool:
        return self.get(digest) is not None

    def get(self, digest: bytes) -> bytes | None:
        for ch in self._channels.values():
            blob = ch.state.get_blob(digest)
            if blob is not None:
                return blob
        return None

    def put(self, collection: str, digest: bytes, data: bytes) -> None:
        where = self._where(collection)
        if where is None:
            return
        ch, ns, coll = where
        try:
            ch.accept(data, ns, coll)
        except ValueError as exc:
            log.warning("private data for %s refused: %s", collection, exc)

    def digests(self, collection: str, after: bytes, limit: int) -> list[bytes]:
        where = self._where(collection)
        if where is None:
            return []
        ch, ns, coll = where
        return ch.state.digests(ns, coll, after, limit)


class PrivateNet:
    """The node's private-data traffic (see the module docstring)."""

    def __init__(
        self,
        name: str,
        transport: PeerTransport,
        gossip: PrivateData,
        channels: Mapping[str, ChannelPrivateData],
        *,
        on_blobs_due: Callable[[str, list[bytes]], None] | None = None,
    ) -> None:
        self.name = name
        self._transport = transport
        self._gossip = gossip
        self._channels = channels
        self._on_blobs_due = on_blobs_due
        self._attempts: dict[bytes, int] = {}
        self._task: asyncio.Task[None] | None = None

    def register(self) -> None:
        self._transport.register_request_handler(wire.PVT_PUSH, self.on_push)
        self._transport.register_request_handler(wire.PVT_FETCH, self.on_fetch)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._reconcile_loop(), name=f"{self.name}-privdata")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    # -- peers -----------------------------------------------------------------------------------

    def member_peers(self, ch: ChannelPrivateData, ns: str, collection: str) -> list[str]:
        return member_peers(self._transport, ch, ns, collection)

    def _peer_org(self, peer: str) -> str | None:
        info = self._transport.peer_info(peer)
        return None if info is None else info.org

    # -- push at endorsement ---------------------------------------------------------------------

    async def disseminate(self, channel: str, write_sets: Sequence[WriteSet]) -> None:
        """Push our endorsement's write sets; Overloaded unless each reached ``required_peers``."""
        ch = self._channels[channel]
        for ws in write_sets:
            c = ch.collection(ws.namespace, ws.collection)
            if c is None:
                continue
            targets = self.member_peers(ch, ws.namespace, ws.collection)[: c.max_peers]
            name = gossip_name(channel, ws.namespace, ws.collection)
            blob = ws.encode()
            answers = await asyncio.gather(*(self._push(p, channel, name, blob) for p in targets))
            acks = sum(answers)
            if acks < c.required_peers:
                raise Overloaded(
                    f"private data of {ws.namespace}/{ws.collection} reached {acks} member nodes, "
                    f"{c.required_peers} required: retry when more members are reachable",
                    {"reason": "private_data_dissemination"},
                )

    async def _push(self, peer: str, channel: str, name: str, blob: bytes) -> bool:
        try:
            answer = await self._transport.request(peer, wire.PVT_PUSH, [channel, name, blob], PUSH_TIMEOUT_S)
            wire.unpack_answer(answer)
            return True
        except (wire.RemoteRefusal, P2PError, TimeoutError) as exc:
            log.info("private push to %s not acknowledged: %s", peer, exc)
            return False

    async def on_push(self, peer: str, payload: Any) -> list[Any]:
        """Serve ``wire.PVT_PUSH``: store through gossip's authorisation, acknowledge if stored."""
        try:
            channel, name, blob = payload
        except (TypeError, ValueError):
            return wire.err(wire.ErrorCode.BAD_REQUEST, "malformed private push")
        org = self._peer_org(peer)
        private = self._gossip
        if not isinstance(name, str) or not isinstance(blob, bytes) or org is None:
            return wire.err(wire.ErrorCode.BAD_REQUEST, "malformed private push")
        parsed = parse_gossip_name(name)
        if parsed is None or parsed[0] != channel:
            return wire.err(wire.ErrorCode.BAD_REQUEST, "collection name does not match the channel")
        if not (private.authorised(org, name) and private.authorised(private.org, name)):
            return wire.err(wire.ErrorCode.UNAUTHORIZED, f"{org} and {private.org} are not both members of {name}")
        try:
            private.on_push(peer, org, PvtPush(name, (blob,)))
        except P2PError as exc:
            return wire.err(wire.ErrorCode.BAD_REQUEST, str(exc))
        if not private.store.has(hashlib.sha256(blob).digest()):
            return wire.err(wire.ErrorCode.BAD_REQUEST, "not a write set of that collection")
        return wire.ok()

    # -- pull of missing data --------------------------------------------------------------------

    async def on_fetch(self, peer: str, payload: Any) -> list[Any]:
        """Serve ``wire.PVT_FETCH`` ``[channel, namespace, collection, tx_id]`` -> ``ok(blob|nil)``."""
        try:
            channel, ns, coll, tx_id = payload
            ch = self._channels[channel]
        except (TypeError, ValueError, KeyError):
            return wire.err(wire.ErrorCode.BAD_REQUEST, "malformed private fetch")
        org = self._peer_org(peer)
        if not all(isinstance(x, str) for x in (ns, coll)) or not isinstance(tx_id, bytes) or org is None:
            return wire.err(wire.ErrorCode.BAD_REQUEST, "malformed private fetch")
        if not (ch.is_member(ns, coll) and ch.is_member(ns, coll, org)):
            return wire.err(wire.ErrorCode.UNAUTHORIZED, f"{org} is not a member of {ns}/{coll}")
        ws = ch.state.write_set(tx_id, ns, coll)
        return wire.ok(None if ws is None else ws.encode())

    async def _reconcile_loop(self) -> None:
        while True:
            for name, ch in self._channels.items():
                try:
                    await self.reconcile(name, ch)
                except StorageError as exc:
                    log.error("channel %s: private data reconciliation failed: %s", name, exc)
            await asyncio.sleep(RECONCILE_INTERVAL_S)

    async def reconcile(self, channel: str, ch: ChannelPrivateData) -> None:
        """One round: purge due blobs, fill the gaps we can, pull the others from member peers."""
        if ch.blobs_due and self._on_blobs_due is not None:
            due, ch.blobs_due = ch.blobs_due, []
            self._on_blobs_due(channel, due)
        for gap_key, b, i, ns, coll in ch.gaps():
            if ch.fill_gap(gap_key, b, i, ns, coll):
                self._attempts.pop(gap_key, None)
                continue
            tries = self._attempts.get(gap_key, 0)
            if tries >= PULL_ATTEMPTS_MAX:
                continue
            self._attempts[gap_key] = tries + 1
            tx_id = ch.gap_tx_id(b, i)
            for peer in self.member_peers(ch, ns, coll)[:PULL_PEERS_MAX]:
                if await self._pull(peer, channel, ch, ns, coll, tx_id) and ch.fill_gap(gap_key, b, i, ns, coll):
                    self._attempts.pop(gap_key, None)
                    log.info(
                        "channel %s: block %d tx %d: private data of %s/%s pulled from %s",
                        channel,
                        b,
                        i,
                        ns,
                        coll,
                        peer,
                    )
                    break

    async def _pull(self, peer: str, channel: str, ch: ChannelPrivateData, ns: str, coll: str, tx_id: bytes) -> bool:
        try:
            answer = await self._transport.request(peer, wire.PVT_FETCH, [channel, ns, coll, tx_id], PUSH_TIMEOUT_S)
            (blob,) = wire.unpack_answer(answer)
        except (wire.RemoteRefusal, P2PError, TimeoutError, ValueError) as exc:
            log.info("private fetch from %s failed: %s", peer, exc)
            return False
        if not isinstance(blob, bytes):
            return False
        try:
            ch.accept(blob, ns, coll)
        except ValueError as exc:
            log.warning("private data pulled from %s refused: %s", peer, exc)
            return False
        return True
