"""A channel's ordering stack on an orderer node: its Raft group, ordering service and forwarding.

Assembled only when this node is an orderer of the channel (``node.roles`` has ``orderer`` and the
channel configuration marks the node as one): a :class:`~consensus.raft.RawNode` on the channel's
LevelDB Raft log, its asyncio :class:`~consensus.raft.driver.RaftDriver`, and the
:class:`~consensus.orderer.service.OrderingService` that cuts and signs blocks. Blocks Raft
committed go to ``deliver`` (the channel's commit loop). Raft messages travel as ``wire.RAFT``
app messages; a follower forwards submissions to the leader as ``wire.SUBMIT`` requests, and a
refusal the leader answers with comes back as the ordering service's own typed exception.

The membership reconciler (:mod:`secprivnode.pipeline.reconciler`) runs beside it on the leader.
This module never commits blocks and never reads the ledger but for its tip and genesis.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, cast

from consensus.orderer.blocks import BlockSigner
from consensus.orderer.errors import OrdererError
from consensus.orderer.service import (
    DriverPort,
    LedgerTip,
    OrderedBlock,
    OrdererConfig,
    OrderingService,
)
from consensus.raft import Entry, Message, RaftConfig, RaftError, RawNode, Snapshot
from consensus.raft.driver import RaftDriver
from consensus.raft.leveldb_storage import LevelDBStorage
from crypto.batch import BatchVerifier
from crypto.msp import Identity
from crypto.signing import PrivateKey, PublicKey
from p2p.api import PeerTransport
from p2p.errors import P2PError
from p2p.messages import AppMessage
from secprivnode import wire
from secprivnode.clock import NodeClock
from secprivnode.config import NodeConfig
from secprivnode.metrics import NodeMetrics
from secprivnode.metrics_feed import LeaderChanges
from secprivnode.pipeline.membership import ChannelView
from secprivnode.pipeline.reconciler import RaftMembershipReconciler
from secprivnode.pipeline.sigcache import SigCache
from secprivnode.pipeline.tasks import cancel_and_wait
from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import ChannelConfig

__all__ = ["FORWARD_TIMEOUT_S", "OrderingStack"]

log = logging.getLogger(__name__)

# How long a submission forwarded to the Raft leader may take to be admitted.
FORWARD_TIMEOUT_S = 10.0
# How long a stopping leader may take to hand its leadership over.
TRANSFER_TIMEOUT_S = 5.0


class _CachedVerifier:
    """``verify_many`` through a :class:`SigCache`: cached triples are answered without ECDSA."""

    def __init__(self, cache: SigCache, inner: BatchVerifier) -> None:
        self._cache = cache
        self._inner = inner

    def verify_many(self, items: Sequence[tuple[PublicKey, bytes, bytes]]) -> list[bool]:
        return self._cache.verify_many(self._inner, items)


class OrderingStack:
    """See the module docstring. ``driver`` and ``orderer`` are None until :meth:`start` ran on
    an orderer of the channel."""

    def __init__(
        self,
        *,
        name: str,
        db: Database,
        ledger: ChannelLedger,
        view: ChannelView,
        config: NodeConfig,
        identity: Identity,
        key: PrivateKey,
        transport: PeerTransport,
        sigcache: SigCache,
        verifier: BatchVerifier | None,
        rng: random.Random,
        clock: NodeClock,
        deliver: Callable[[int, bytes, bytes], None],
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.name = name
        self._metrics = metrics
        self._db = db
        self.ledger = ledger
        self.view = view
        self._cfg = config
        self._identity = identity
        self._key = key
        self._transport = transport
        self._sigcache = sigcache
        self._verifier = verifier
        self._rng = rng
        self._clock = clock
        self._deliver = deliver  # (number, block bytes, block hash) of each block Raft committed
        self._tasks: list[asyncio.Task[None]] = []
        self.driver: RaftDriver | None = None
        self.orderer: OrderingService | None = None

    # ------------------------------------------------------------------ lifecycle
    def is_orderer(self, cfg: ChannelConfig | None = None) -> bool:
        cfg = cfg or self.view.require_config()
        me = cfg.node(self._identity.name)
        return self._cfg.has_role("orderer") and me is not None and me.orderer

    async def start(self) -> None:
        """Start Raft and ordering if this node is an orderer of the channel and they are not running."""
        cfg = self.view.require_config()
        if self.orderer is not None or not self.is_orderer(cfg):
            return
        storage = LevelDBStorage(self._db.raw, self.name)
        tip = LedgerTip.from_ledger(self.ledger)
        voters = tuple(n.name for n in self._genesis_config().orderers())
        raft_cfg = RaftConfig(
            id=self._identity.name,
            initial_voters=voters if self._identity.name in voters else (),
            election_ticks=self._cfg.raft.election_ticks,
            heartbeat_ticks=self._cfg.raft.heartbeat_ticks,
            applied=tip.raft_index,
        )
        node = RawNode(raft_cfg, storage, random.Random(self._rng.getrandbits(64)))
        self.driver = RaftDriver(
            node,
            storage,
            self._send_raft,
            self._apply_raft,
            self._clock,
            self._cfg.raft.tick_ms / 1000,
            restore=self._restore_raft,
            on_violation=lambda peer, exc: self._transport.penalise(peer, f"Raft protocol violation: {exc}"),
            on_leader=LeaderChanges(self._metrics, self.name) if self._metrics is not None else None,
        )
        self.orderer = OrderingService(
            channel=self.name,
            node_id=self._identity.name,
            signer=BlockSigner(self._identity.cert_der, self._key),
            batch=cfg.batch,
            msp_provider=self.view,
            clock=self._clock,
            raft=DriverPort(self.driver),
            forward=self._forward,
            ledger_tip=lambda: LedgerTip.from_ledger(self.ledger),
            config=OrdererConfig(snapshot_every_blocks=self._cfg.raft.snapshot_interval_blocks),
            on_dropped=self._on_dropped,
            verifier=self._creator_verifier(),
        )
        await self.orderer.start()
        reconciler = RaftMembershipReconciler(self.name, self.driver, self.orderer, self.view, self._clock)
        self._tasks.append(asyncio.create_task(self.driver.run(), name=f"{self.name}-raft"))
        self._tasks.append(asyncio.create_task(self._take_ordered(), name=f"{self.name}-ordered"))
        self._tasks.append(asyncio.create_task(reconciler.run(), name=f"{self.name}-members"))
        log.info("channel %s: ordering service started (voters at bootstrap: %s)", self.name, ", ".join(voters))

    async def stop(self) -> None:
        """Hand Raft leadership over and stop the ordering service (idempotent)."""
        if self.driver is not None:
            with suppress(Exception):
                await asyncio.wait_for(self.driver.stop(transfer=True), TRANSFER_TIMEOUT_S)
        if self.orderer is not None:
            await self.orderer.stop()
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    def _creator_verifier(self) -> BatchVerifier | None:
        """The ordering service's creator check, answered from this channel's SigCache first.

        A creator signature reaches the Raft leader already verified when the leader endorsed the
        proposal, and the leader's validator checks it again when the block commits; sharing the
        cache makes each of those one verification instead of two. The service only calls
        ``verify_many``, which :class:`_CachedVerifier` provides."""
        if self._verifier is None:
            return None
        return cast(BatchVerifier, _CachedVerifier(self._sigcache, self._verifier))

    def _genesis_config(self) -> ChannelConfig:
        from secprivnode.contracts.config_contract import decode_config

        tx = self.ledger.get_block(0).transactions[0]
        return decode_config(tx.proposal.args[0])

    # ------------------------------------------------------------------ Raft
    def _send_raft(self, msgs: list[Message]) -> None:
        for m in msgs:
            self._transport.send(m.dst, AppMessage(wire.RAFT, [self.name, m.to_wire()]))

    def on_raft_message(self, peer: str, wire_msg: Any) -> None:
        if self.driver is None:
            return
        msg = Message.from_wire(wire_msg)
        if msg.src != peer:
            return  # a peer may only speak for itself
        self.driver.deliver(msg)

    async def _apply_raft(self, entries: list[Entry]) -> None:
        assert self.orderer is not None
        await self.orderer.apply(entries)

    async def _restore_raft(self, snap: Snapshot) -> None:
        assert self.orderer is not None
        await self.orderer.restore(snap)

    # ------------------------------------------------------------------ submissions
    async def _forward(self, leader: str, tx_bytes: bytes) -> bytes:
        answer = await self._transport.request(leader, wire.SUBMIT, [self.name, tx_bytes], FORWARD_TIMEOUT_S)
        try:
            (tx_id,) = wire.unpack_answer(answer)
        except wire.RemoteRefusal as exc:
            raise wire.ordering_exception(exc) from exc
        if not isinstance(tx_id, bytes):
            raise wire.RemoteRefusal(wire.ErrorCode.PROTOCOL, "tx id is not bytes")
        return tx_id

    async def on_submit(self, peer: str, tx_bytes: bytes) -> list[Any]:
        """A peer forwards a transaction to this node's ordering service."""
        if self.orderer is None:
            return wire.err(wire.ErrorCode.NOT_ORDERER, f"{self._identity.name} is not an orderer of {self.name}")
        try:
            return wire.ok(await self.orderer.submit(tx_bytes))
        except (OrdererError, RaftError) as exc:  # NotLeader, ProposalDropped: the forwarder reports them
            code = wire.ordering_code(exc)
            return wire.err(code if code is not None else wire.ErrorCode.UNKNOWN, str(exc))
        except P2PError as exc:  # this follower could not forward it to the leader
            return wire.err(wire.ErrorCode.UNAVAILABLE, f"{self._identity.name} could not reach the leader: {exc}")

    async def _take_ordered(self) -> None:
        assert self.orderer is not None
        ob: OrderedBlock
        async for ob in self.orderer.committed():
            self._deliver(ob.number, ob.data, ob.hash)

    def _on_dropped(self, tx_ids: Sequence[bytes], reason: str) -> None:
        log.warning("channel %s: %d transaction(s) dropped by ordering (%s)", self.name, len(tx_ids), reason)

    # ------------------------------------------------------------------ status
    def leader(self) -> str | None:
        return self.driver.status().leader if self.driver is not None else None
