"""One channel on one node: the assembly of its pipeline, in the order the data flows.

    gateway → endorser → orderer → validator → committer

* :class:`~secprivnode.pipeline.endorser.Endorser` simulates proposals against the ledger;
* :class:`~secprivnode.pipeline.ordering.OrderingStack` (orderer nodes only) runs the channel's
  Raft group and ordering service and forwards submissions to the leader;
* :class:`~secprivnode.pipeline.commit_loop.CommitLoop` validates
  (:class:`~secprivnode.pipeline.validator.BlockValidator`) and commits
  (:class:`~secprivnode.pipeline.committer.Committer`) the blocks ordering and gossip deliver,
  and :class:`~secprivnode.pipeline.events.CommitEvents` tells waiters and subscribers;
* :mod:`secprivnode.pipeline.reconciler` keeps peers and the Raft membership in step with the
  committed configuration; :class:`~secprivnode.pipeline.gossip_store.GossipStore` is gossip's
  view of the channel.

:class:`ChannelRuntime` builds these, wires them to each other and starts and stops them; the
gateway, the service and the node reach a channel only through the narrow interfaces they each
declare. This module holds no protocol logic of its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from consensus.orderer.service import OrderingService
from crypto.batch import BatchVerifier
from crypto.msp import Identity
from crypto.signing import PrivateKey
from p2p.api import PeerTransport
from secprivnode import wire
from secprivnode.api import Event
from secprivnode.clock import NodeClock
from secprivnode.config import NodeConfig
from secprivnode.contracts.runtime import ContractRegistry
from secprivnode.metrics import NodeMetrics
from secprivnode.pipeline.commit_loop import ChannelHalted, CommitLoop
from secprivnode.pipeline.committer import CommitResult, Committer
from secprivnode.pipeline.endorser import Endorser
from secprivnode.pipeline.events import CommitEvents, TxOutcome
from secprivnode.pipeline.gossip_store import GossipStore
from secprivnode.pipeline.membership import ChannelView
from secprivnode.pipeline.ordering import OrderingStack
from secprivnode.pipeline.privdata import ChannelPrivateData
from secprivnode.pipeline.reconciler import PeerReconciler
from secprivnode.pipeline.sigcache import SigCache
from secprivnode.pipeline.tasks import cancel_and_wait
from secprivnode.pipeline.validator import BlockValidator
from secprivnode.status import raft_status_json
from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import Block

__all__ = ["ChannelHalted", "ChannelRuntime", "TxOutcome"]

log = logging.getLogger(__name__)


class ChannelRuntime:
    """See the module docstring. Created and owned by :class:`secprivnode.node.Node`."""

    def __init__(
        self,
        *,
        name: str,
        db: Database,
        genesis: Block,
        config: NodeConfig,
        identity: Identity,
        key: PrivateKey,
        transport: PeerTransport,
        contracts: ContractRegistry,
        metrics: NodeMetrics,
        verifier: BatchVerifier | None,
        rng: random.Random,
        clock: NodeClock,
    ) -> None:
        self.name = name
        self._identity = identity
        self.ledger = ledger = ChannelLedger(db, name)
        self.view = ChannelView(ledger)
        sigcache = SigCache()
        self.privdata = ChannelPrivateData(ledger, identity.org)
        self.committer = Committer(ledger, BlockValidator(ledger, verifier, sigcache=sigcache), self.privdata)
        if ledger.height == 0:
            self.committer.commit(genesis, block_bytes=genesis.encode())
        elif ledger.get_header(0).hash() != genesis.hash():
            raise ValueError(f"channel {name}: the ledger's genesis block differs from the configured one")
        self.endorser = Endorser(
            ledger,
            self.view,
            contracts,
            identity,
            key,
            lambda: clock.now_ms() // 1000,
            sigcache=sigcache,
            verifier=verifier,
            private=self.privdata,
        )
        self.ordering = OrderingStack(
            name=name,
            db=db,
            ledger=ledger,
            view=self.view,
            config=config,
            identity=identity,
            key=key,
            transport=transport,
            sigcache=sigcache,
            verifier=verifier,
            rng=rng,
            clock=clock,
            metrics=metrics,
            deliver=lambda number, data, block_hash: self.commits.offer_block(number, data, block_hash, publish=True),
        )
        self.events = CommitEvents(name, ledger)
        self.commits = CommitLoop(
            name=name,
            ledger=ledger,
            committer=self.committer,
            events=self.events,
            metrics=metrics,
            clock=clock,
            on_commit=self._on_commit,
            on_halt=self._on_halt,
        )
        self.gossip_store = GossipStore(self.commits)
        self._peers = PeerReconciler(
            name,
            identity,
            transport,
            ledger,
            lambda: clock.now_ms() // 1000,
            self._spawn,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._publish: Callable[[str, int, bytes], None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self, publish: Callable[[str, int, bytes], None] | None) -> None:
        self._publish = publish
        self.commits.start()
        self._peers.apply(self.view.require_config(), initial=True)
        await self.ordering.start()

    async def stop(self) -> None:
        """Hand Raft leadership over, stop ordering, finish the block being committed."""
        await self.ordering.stop()
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self.commits.stop()
        self.events.cancel_waiters()

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(coro, name=f"{self.name}-{name}"))

    def _on_commit(self, result: CommitResult, data: bytes, publish: bool) -> None:
        if publish and self._publish is not None:
            self._publish(self.name, result.number, data)
        if result.config is not None:
            self._peers.apply(result.config, initial=False, block=(result.number, data))
            self._spawn(self._start_ordering(), "orderer-start")

    async def _start_ordering(self) -> None:
        if self.commits.halted is None:
            await self.ordering.start()

    def _on_halt(self) -> None:
        self._spawn(self.ordering.stop(), "orderer-halt")

    # ------------------------------------------------------------------ health
    @property
    def halted(self) -> str | None:
        """Why the channel stopped committing for good; None while it commits."""
        return self.commits.halted

    @property
    def excluded(self) -> str | None:
        """Why this node is no longer a member of the channel (removed or revoked), or None."""
        return self._peers.excluded

    def require_healthy(self) -> None:
        """Raise :class:`ChannelHalted` if the channel's commit loop has halted."""
        self.commits.require_healthy()

    # ------------------------------------------------------------------ node-to-node requests
    def on_raft_message(self, peer: str, wire_msg: Any) -> None:
        self.ordering.on_raft_message(peer, wire_msg)

    async def on_submit(self, peer: str, tx_bytes: bytes) -> list[Any]:
        """A peer forwards a transaction to this node's ordering service."""
        if self.halted is not None:
            me = self._identity.name
            return wire.err(wire.ErrorCode.CHANNEL_HALTED, f"{me} has halted {self.name}: {self.halted}")
        return await self.ordering.on_submit(peer, tx_bytes)

    # ------------------------------------------------------------------ ordering
    @property
    def orderer(self) -> OrderingService | None:
        """The local ordering service (``submit``), or None on a node that does not order."""
        return self.ordering.orderer

    def leader(self) -> str | None:
        return self.ordering.leader()

    def raft_status(self) -> dict[str, Any]:
        driver = self.ordering.driver
        return raft_status_json(driver.status() if driver is not None else None)

    # ------------------------------------------------------------------ waiting and events
    def offer_block(self, number: int, data: bytes, block_hash: bytes, *, publish: bool) -> None:
        """Queue a verified block for commit (ignored if already committed or queued, or halted)."""
        self.commits.offer_block(number, data, block_hash, publish=publish)

    def wait_for(self, tx_id: bytes) -> asyncio.Future[TxOutcome]:
        self.require_healthy()
        return self.events.wait_for(tx_id)

    def forget_waiter(self, tx_id: bytes, fut: asyncio.Future[TxOutcome]) -> None:
        self.events.forget_waiter(tx_id, fut)

    def is_awaited(self, tx_id: bytes) -> bool:
        return self.events.is_awaited(tx_id)

    def subscribe(self, kinds: frozenset[str], tx_id: bytes | None) -> AsyncIterator[Event]:
        return self.events.events(kinds, tx_id)
