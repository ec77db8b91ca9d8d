"""One channel on one node: its ledger, the validate-and-commit loop, the endorser, and — on
orderer nodes — the channel's Raft group and ordering service.

Blocks reach the commit loop from two sources, both verified before they get here:

* the local ordering service (this node is an orderer of the channel): blocks Raft committed;
* gossip (state transfer and push): blocks whose hash links, Merkle roots and orderer
  signatures the p2p layer checked.

The loop commits them strictly in order, each exactly once (a block below the ledger height is
ignored, wherever it came from), then wakes transaction waiters, feeds subscribers, and — when a
block changed the channel configuration — adjusts peers and the Raft membership. A block is
validated and its batch staged on the event loop; the synchronous LevelDB write runs on a writer
thread (LevelDB releases the GIL while it syncs), so Raft, gossip and RPC keep running through the
fsync, and the next block's hashing and Merkle check run meanwhile.

Raft messages travel as ``wire.RAFT`` app messages; forwarded submissions as ``wire.SUBMIT``
requests. This module never reads blocks' bytes from the network itself and never commits a
block out of order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, cast

from consensus.orderer.blocks import BlockSigner
from consensus.orderer.errors import OrdererError
from consensus.orderer.service import (
    DriverPort,
    LedgerTip,
    OrderedBlock,
    OrdererConfig,
    OrderingService,
    SystemClock,
)
from consensus.raft import ConfChange, ConfChangeType, Entry, Message, RaftConfig, RawNode, Role, Snapshot
from consensus.raft.driver import RaftDriver
from consensus.raft.driver import SystemClock as RaftClock
from consensus.raft.leveldb_storage import LevelDBStorage
from crypto.batch import BatchVerifier
from crypto.msp import Identity
from crypto.signing import PrivateKey, PublicKey
from p2p.api import PeerTransport
from p2p.messages import AppMessage, BlockPush
from p2p.verify import VerifiedBlock
from secprivnode import wire
from secprivnode.api import Event
from secprivnode.config import NodeConfig
from secprivnode.contracts.runtime import ContractRegistry
from secprivnode.metrics import NodeMetrics
from secprivnode.metrics_feed import LeaderChanges
from secprivnode.pipeline.committer import CommitResult, Committer
from secprivnode.pipeline.endorser import Endorser
from secprivnode.pipeline.errors import AlreadyCommitted, BlockRejected
from secprivnode.pipeline.membership import ChannelView
from secprivnode.pipeline.privdata import ChannelPrivateData
from secprivnode.pipeline.sigcache import SigCache
from secprivnode.pipeline.standing import ever_listed, exclusion_reason
from secprivnode.pipeline.validator import BlockValidator
from storage.errors import StorageError
from storage.kv import Database
from storage.ledger import ChannelLedger, CheckedBlock
from storage.model import Block, ChannelConfig, ValidationCode
from storage.writer import SyncWriter

__all__ = ["ChannelRuntime", "TxOutcome"]

log = logging.getLogger(__name__)

# Verified blocks waiting for their turn to commit. Gossip asks for blocks just above what it
# believes we have (ledger height plus what is queued), in batches of at most 64 blocks from at most
# three peers, so a few hundred is the most that can legitimately wait.
PENDING_BLOCKS_MAX = 1024
# Transactions whose commit a client is waiting for. Beyond it, new waits are refused (Overloaded)
# rather than letting a flood of never-ordered ids pin memory.
WAITERS_MAX = 200_000
# Events buffered per subscriber; a subscriber that falls this far behind is cut off.
SUBSCRIBER_QUEUE_MAX = 1024
# How often the Raft leader compares the channel's orderer set with the Raft membership.
MEMBERSHIP_CHECK_S = 0.5
# A learner is promoted once it is within this many entries of the leader's commit index.
PROMOTE_LAG_ENTRIES = 8
# How long a node keeps its link to a node the configuration just removed: long enough for the
# block that removes it (pushed to it by every member, and on orderers carried by Raft, whose
# heartbeats bring the commit index every 100 ms) to arrive, so it can tell it was removed. New
# connections from it are refused at once: the transport validates peers against the current MSP.
REMOVED_PEER_LINGER_S = 3.0


@dataclass(frozen=True, slots=True)
class TxOutcome:
    block_number: int
    code: ValidationCode


class _Subscriber:
    def __init__(self, kinds: frozenset[str], tx_id: bytes | None) -> None:
        self.kinds = kinds
        self.tx_id = tx_id
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_QUEUE_MAX)
        self.overflowed = False

    def offer(self, ev: Event) -> None:
        if ev.kind not in self.kinds or self.overflowed:
            return
        if self.tx_id is not None and ev.data.get("tx_id") != self.tx_id:
            return
        try:
            self.queue.put_nowait(ev)
        except asyncio.QueueFull:
            self.overflowed = True
            with suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # tells the reader it was cut off


class _CachedVerifier:
    """``verify_many`` through a :class:`SigCache`: cached triples are answered without ECDSA."""

    def __init__(self, cache: SigCache, inner: BatchVerifier) -> None:
        self._cache = cache
        self._inner = inner

    def verify_many(self, items: Sequence[tuple[PublicKey, bytes, bytes]]) -> list[bool]:
        return self._cache.verify_many(self._inner, items)


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
    ) -> None:
        self.name = name
        self._db = db
        self._cfg = config
        self._identity = identity
        self._key = key
        self._transport = transport
        self._metrics = metrics
        self._verifier = verifier
        self._rng = rng
        self.ledger = ChannelLedger(db, name)
        self.view = ChannelView(self.ledger)
        self._sigcache = SigCache()
        self._validator = BlockValidator(self.ledger, verifier, sigcache=self._sigcache)
        self.privdata = ChannelPrivateData(self.ledger, identity.org)
        self.committer = Committer(self.ledger, self._validator, self.privdata)
        if self.ledger.height == 0:
            self.committer.commit(genesis, block_bytes=genesis.encode())
        elif self.ledger.get_header(0).hash() != genesis.hash():
            raise ValueError(f"channel {name}: the ledger's genesis block differs from the configured one")
        self.endorser = Endorser(
            self.ledger,
            self.view,
            contracts,
            identity,
            key,
            lambda: int(time.time()),
            sigcache=self._sigcache,
            verifier=verifier,
            private=self.privdata,
        )
        self._pending: dict[int, tuple[bytes, bytes, bool]] = {}  # number -> (data, hash, publish)
        self._writing: tuple[int, bytes, bytes] | None = None  # (number, data, hash) being written
        self._prechecked: tuple[int, CheckedBlock] | None = None  # the next block, checked meanwhile
        # One thread, so batches reach LevelDB in commit order; closed by stop() before the
        # database can close under a write.
        self._writer = SyncWriter(f"{name}-ledger-writer")
        self._pending_wake = asyncio.Event()
        self._waiters: dict[bytes, list[asyncio.Future[TxOutcome]]] = {}
        self._subscribers: set[_Subscriber] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.driver: RaftDriver | None = None
        self.orderer: OrderingService | None = None
        self._publish: Callable[[str, int, bytes], None] | None = None
        self._config_nodes: set[str] = set()
        # Why this node is no longer a member of the channel (removed or revoked), or None.
        self.excluded: str | None = None
        self._was_member = False  # listed by some committed configuration (set by _apply_config)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, publish: Callable[[str, int, bytes], None] | None) -> None:
        self._publish = publish
        self._tasks.append(asyncio.create_task(self._commit_loop(), name=f"{self.name}-commit"))
        self._apply_config(self.view.require_config(), initial=True)
        await self._maybe_start_orderer()

    async def stop(self) -> None:
        """Hand Raft leadership over, stop ordering, finish the block being committed."""
        if self.driver is not None:
            with suppress(Exception):
                await asyncio.wait_for(self.driver.stop(transfer=True), 5.0)
        if self.orderer is not None:
            await self.orderer.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        await asyncio.get_running_loop().run_in_executor(None, self._writer.close)
        for futs in self._waiters.values():
            for f in futs:
                if not f.done():
                    f.cancel()
        self._waiters.clear()

    # ------------------------------------------------------------------ ordering stack
    def is_orderer(self, cfg: ChannelConfig | None = None) -> bool:
        cfg = cfg or self.view.require_config()
        me = cfg.node(self._identity.name)
        return self._cfg.has_role("orderer") and me is not None and me.orderer

    async def _maybe_start_orderer(self) -> None:
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
            RaftClock(),
            self._cfg.raft.tick_ms / 1000,
            restore=self._restore_raft,
            on_violation=lambda peer, exc: self._transport.penalise(peer, f"Raft protocol violation: {exc}"),
            on_leader=LeaderChanges(self._metrics, self.name),
        )
        self.orderer = OrderingService(
            channel=self.name,
            node_id=self._identity.name,
            signer=BlockSigner(self._identity.cert_der, self._key),
            batch=cfg.batch,
            msp_provider=self.view,
            clock=SystemClock(),
            raft=DriverPort(self.driver),
            forward=self._forward,
            ledger_tip=lambda: LedgerTip.from_ledger(self.ledger),
            config=OrdererConfig(snapshot_every_blocks=self._cfg.raft.snapshot_interval_blocks),
            on_dropped=self._on_dropped,
            verifier=self._creator_verifier(),
        )
        await self.orderer.start()
        self._tasks.append(asyncio.create_task(self.driver.run(), name=f"{self.name}-raft"))
        self._tasks.append(asyncio.create_task(self._take_ordered(), name=f"{self.name}-ordered"))
        self._tasks.append(asyncio.create_task(self._membership_loop(), name=f"{self.name}-members"))
        log.info("channel %s: ordering service started (voters at bootstrap: %s)", self.name, ", ".join(voters))

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

    async def _forward(self, leader: str, tx_bytes: bytes) -> bytes:
        answer = await self._transport.request(leader, wire.SUBMIT, [self.name, tx_bytes], 10.0)
        (tx_id,) = wire.unpack_answer(answer)
        if not isinstance(tx_id, bytes):
            raise wire.RemoteRefusal("protocol", "tx id is not bytes")
        return tx_id

    async def on_submit(self, peer: str, tx_bytes: bytes) -> list[Any]:
        """A peer forwards a transaction to this node's ordering service."""
        if self.orderer is None:
            return wire.err("NotOrderer", f"{self._identity.name} is not an orderer of {self.name}")
        try:
            return wire.ok(await self.orderer.submit(tx_bytes))
        except OrdererError as exc:
            return wire.err(type(exc).__name__, str(exc))
        except Exception as exc:  # NotLeader, ProposalDropped: the forwarder reports them
            return wire.err(type(exc).__name__, str(exc))

    async def _take_ordered(self) -> None:
        assert self.orderer is not None
        ob: OrderedBlock
        async for ob in self.orderer.committed():
            self.offer_block(ob.number, ob.data, ob.hash, publish=True)

    def _on_dropped(self, tx_ids: Sequence[bytes], reason: str) -> None:
        log.warning("channel %s: %d transaction(s) dropped by ordering (%s)", self.name, len(tx_ids), reason)

    async def _membership_loop(self) -> None:
        """On the Raft leader: make the Raft membership follow the channel's orderer set."""
        while True:
            await asyncio.sleep(MEMBERSHIP_CHECK_S)
            driver = self.driver
            if driver is None:
                return
            st = driver.status()
            if st.role != Role.LEADER:
                continue
            cfg = self.view.config()
            if cfg is None:
                continue
            change = self._next_conf_change(st, {n.name for n in cfg.orderers()})
            if change is None:
                continue
            try:
                assert self.orderer is not None
                await self.orderer.propose_conf_change(change)
                log.info(
                    "channel %s: proposed Raft membership change %s %s", self.name, change.kind.name, change.node_id
                )
            except Exception as exc:  # refused or dropped: retried on the next check
                log.info("channel %s: membership change %s not taken: %s", self.name, change, exc)

    @staticmethod
    def _next_conf_change(st: Any, want: set[str]) -> ConfChange | None:
        voters, learners = set(st.voters), set(st.learners)
        for n in sorted(want - voters - learners):
            return ConfChange(ConfChangeType.ADD_LEARNER, n)
        for n in sorted(learners & want):
            prog = st.progress.get(n)
            if prog is not None and prog.match + PROMOTE_LAG_ENTRIES >= st.commit:
                return ConfChange(ConfChangeType.PROMOTE, n)
        for n in sorted((voters | learners) - want):
            if n != st.id:
                return ConfChange(ConfChangeType.REMOVE, n)
        return None

    # ------------------------------------------------------------------ blocks in
    def offer_block(self, number: int, data: bytes, block_hash: bytes, *, publish: bool) -> None:
        """Queue a verified block for commit (ignored if already committed or queued)."""
        if number < self._committed_or_writing() or number in self._pending:
            return
        if len(self._pending) >= PENDING_BLOCKS_MAX:
            log.warning("channel %s: commit queue full, block %d left for anti-entropy", self.name, number)
            return
        self._pending[number] = (data, block_hash, publish)
        self._pending_wake.set()
        self._metrics.queue_depth.labels(queue=f"{self.name}/commit").set(len(self._pending))

    def _committed_or_writing(self) -> int:
        """The ledger height, counting the block on the writer thread as committed."""
        w = self._writing
        return w[0] + 1 if w is not None else self.ledger.height

    def gossip_height(self) -> int:
        """Ledger height plus the queued blocks that follow it without a gap."""
        h = self._committed_or_writing()
        while h in self._pending:
            h += 1
        return h

    def gossip_tip_hash(self) -> bytes | None:
        h = self.gossip_height()
        w = self._writing
        if w is not None and h == w[0] + 1:
            return w[2]
        if h > self._committed_or_writing():
            return self._pending[h - 1][1]
        return self.ledger.tip_hash

    def gossip_block_bytes(self, number: int) -> bytes:
        if number < self.ledger.height:
            return self.ledger.get_block_bytes(number)
        w = self._writing
        if w is not None and w[0] == number:
            return w[1]
        item = self._pending.get(number)
        if item is None:
            raise KeyError(number)
        return item[0]

    def gossip_deliver(self, blocks: Sequence[VerifiedBlock]) -> None:
        for vb in blocks:
            self.offer_block(vb.header.number, vb.data, vb.hash, publish=False)

    async def _commit_loop(self) -> None:
        while True:
            await self._pending_wake.wait()
            self._pending_wake.clear()
            for n in [n for n in self._pending if n < self.ledger.height]:
                del self._pending[n]
            while (item := self._pending.pop(self.ledger.height, None)) is not None:
                data, block_hash, publish = item
                await self._commit_one(data, block_hash, publish)
                await asyncio.sleep(0)  # let RPC and Raft breathe between blocks
            self._metrics.queue_depth.labels(queue=f"{self.name}/commit").set(len(self._pending))

    async def _commit_one(self, data: bytes, block_hash: bytes, publish: bool) -> None:
        t0 = time.perf_counter()
        number = self.ledger.height
        try:
            pre, self._prechecked = self._prechecked, None
            if pre is not None and pre[0] == number and pre[1].data == data:
                checked: CheckedBlock | None = pre[1]
                block = pre[1].block
            else:
                checked, block = None, Block.decode(data)
            prepared = self.committer.prepare(block, block_bytes=data, checked=checked)
        except AlreadyCommitted:
            return
        except (BlockRejected, StorageError, ValueError) as exc:
            log.error("channel %s: block refused: %s", self.name, exc)
            return
        self._writing = (number, data, block_hash)
        try:
            write = asyncio.wrap_future(self._writer.submit(prepared.staged.write))
            self._precheck(number + 1)
            await asyncio.shield(write)  # a cancelled loop still lets the write finish (stop joins it)
        except StorageError as exc:
            log.error("channel %s: writing block %d failed: %s", self.name, number, exc)
            return
        finally:
            self._writing = None
        result = self.committer.finish(prepared)
        m = self._metrics
        m.commit_latency.labels(channel=self.name).observe(time.perf_counter() - t0)
        m.blocks_committed.labels(channel=self.name).inc()
        m.block_height.labels(channel=self.name).set(result.number + 1)
        for code in result.codes:
            m.transactions.labels(channel=self.name, code=code.name).inc()
        if publish and self._publish is not None:
            self._publish(self.name, result.number, data)
        self._notify(result)
        if result.config is not None:
            self._apply_config(result.config, initial=False, block=(result.number, data))
            self._tasks = [t for t in self._tasks if not t.done()]
            self._tasks.append(asyncio.create_task(self._maybe_start_orderer(), name=f"{self.name}-orderer-start"))

    def _precheck(self, number: int) -> None:
        """Decode and check block ``number`` if it is queued, while its predecessor syncs."""
        item = self._pending.get(number)
        if item is None:
            return
        try:
            block = Block.decode(item[0])
            self._prechecked = (number, self.ledger.check_block(block, item[0]))
        except (StorageError, ValueError):
            pass  # the commit decodes it again and reports why it is refused

    def _notify(self, result: CommitResult) -> None:
        block_ev = Event(
            "block",
            self.name,
            {
                "number": result.number,
                "hash": result.block_hash,
                "tx_count": len(result.codes),
                "valid": result.valid_count,
            },
        )
        events = [block_ev]
        for tx in result.txs:
            outcome = TxOutcome(result.number, tx.code)
            for fut in self._waiters.pop(tx.tx_id, ()):
                if not fut.done():
                    fut.set_result(outcome)
            if self._subscribers:
                events.append(Event("tx", self.name, {"tx_id": tx.tx_id, "block": result.number, "code": tx.code.name}))
                for name, payload in tx.events:
                    events.append(
                        Event(
                            "contract",
                            self.name,
                            {"tx_id": tx.tx_id, "contract": tx.contract, "name": name, "payload": payload},
                        )
                    )
        for sub in list(self._subscribers):
            for ev in events:
                sub.offer(ev)

    def _apply_config(self, cfg: ChannelConfig, *, initial: bool, block: tuple[int, bytes] | None = None) -> None:
        """Dial the channel's other nodes; drop removed ones (after handing them ``block``, the one
        that removed them, so they can tell); trust the orgs' current CAs and CRLs."""
        me = self._identity.name
        names = {n.name for n in cfg.nodes}
        if initial:
            self._was_member = ever_listed(self.ledger, me)
        self._was_member = self._was_member or cfg.node(me) is not None
        reason = exclusion_reason(cfg, self._identity, int(time.time()), was_member=self._was_member)
        if reason is not None:
            if self.excluded is None:
                log.error("channel %s: %s; this node no longer accepts transactions for it", self.name, reason)
            self.excluded = reason
            for peer in self._config_nodes | names:
                self._transport.remove_peer(peer)  # nobody will talk to us: stop dialling them
            self._config_nodes = set()
            return
        for n in cfg.nodes:
            if n.name != me:
                self._transport.add_peer(n.name, n.address)
        gone = self._config_nodes - names
        if block is not None:
            # Gossip no longer serves a node the configuration dropped; this push is its last block.
            for name in gone:
                self._transport.send(name, BlockPush(self.name, block[0], block[1]))
        if gone and not initial:
            self._tasks.append(asyncio.create_task(self._drop_later(gone), name=f"{self.name}-drop-removed"))
        self._config_nodes = names
        if not initial:
            self._transport.refresh_trust()
            log.info("channel %s: configuration sequence %d applied", self.name, cfg.sequence)

    async def _drop_later(self, gone: set[str]) -> None:
        await asyncio.sleep(REMOVED_PEER_LINGER_S)
        for name in gone:
            if name not in self._config_nodes:
                self._transport.remove_peer(name)

    # ------------------------------------------------------------------ waiting and events
    def wait_for(self, tx_id: bytes) -> asyncio.Future[TxOutcome]:
        fut: asyncio.Future[TxOutcome] = asyncio.get_running_loop().create_future()
        loc = self.ledger.tx_location(tx_id)
        if loc is not None and loc[2] is ValidationCode.VALID:
            fut.set_result(TxOutcome(loc[0], loc[2]))
            return fut
        if len(self._waiters) >= WAITERS_MAX:
            raise OverflowError("too many transactions awaited")
        self._waiters.setdefault(tx_id, []).append(fut)
        return fut

    def forget_waiter(self, tx_id: bytes, fut: asyncio.Future[TxOutcome]) -> None:
        futs = self._waiters.get(tx_id)
        if futs and fut in futs:
            futs.remove(fut)
            if not futs:
                del self._waiters[tx_id]

    def is_awaited(self, tx_id: bytes) -> bool:
        return tx_id in self._waiters

    async def events(self, kinds: frozenset[str], tx_id: bytes | None) -> AsyncIterator[Event]:
        sub = _Subscriber(kinds, tx_id)
        self._subscribers.add(sub)
        try:
            while True:
                ev = await sub.queue.get()
                if ev is None:
                    from secprivnode.api import Overloaded

                    raise Overloaded("subscriber fell too far behind; subscribe again")
                yield ev
        finally:
            self._subscribers.discard(sub)

    # ------------------------------------------------------------------ status
    def raft_status(self) -> dict[str, Any]:
        if self.driver is None:
            return {
                "leader": None,
                "term": 0,
                "role": "none",
                "commit": 0,
                "applied": 0,
                "voters": [],
                "learners": [],
                "orderer": False,
            }
        st = self.driver.status()
        return {
            "id": st.id,
            "leader": st.leader,
            "term": st.term,
            "role": st.role.name.lower(),
            "commit": st.commit,
            "applied": st.applied,
            "last_index": st.last_index,
            "voters": list(st.voters),
            "learners": list(st.learners),
            "orderer": True,
            "progress": {
                k: {"match": p.match, "next": p.next, "state": p.state.name.lower()} for k, p in st.progress.items()
            },
        }

    def leader(self) -> str | None:
        return self.driver.status().leader if self.driver is not None else None
