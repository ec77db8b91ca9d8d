"""Three ordering services over three real Raft drivers, an in-memory message bus, LevelDB Raft
logs and one virtual clock: forwarding, identical delivery, leader change, restart."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import plyvel
import pytest

from consensus.orderer.blocks import BlockSigner
from consensus.orderer.errors import DuplicateTransaction, OrdererError
from consensus.orderer.service import DriverPort, OrdererConfig, OrderingService
from consensus.raft import (
    ConfChange,
    ConfChangeRefused,
    ConfChangeType,
    Entry,
    Message,
    RaftConfig,
    RawNode,
    Role,
    Snapshot,
)
from consensus.raft.driver import RaftDriver
from consensus.raft.leveldb_storage import LevelDBStorage
from storage.model import GENESIS_PREVIOUS_HASH, BatchConfig, Block

from ._harness import ListLedger, VirtualClock, run_until
from .conftest import CHANNEL, Network, TxFactory

IDS = ("o0", "o1", "o2")
TICK_S = 0.01
BATCH = BatchConfig(max_tx_count=8, preferred_max_bytes=64 * 1024, absolute_max_bytes=256 * 1024, timeout_ms=50)


class RaftNet:
    """Three orderer nodes in one event loop; ``cut`` isolates a node from the bus."""

    def __init__(self, tmp: Path, network: Network) -> None:
        self.tmp = tmp
        self.network = network
        self.clock = VirtualClock()
        self.drivers: dict[str, RaftDriver] = {}
        self.clock.busy = lambda: any(d.writing for d in self.drivers.values())
        self.services: dict[str, OrderingService] = {}
        self.tasks: dict[str, list[asyncio.Task[None]]] = {}
        self.dbs: dict[str, Any] = {}
        self.ledgers = {n: ListLedger() for n in IDS}
        self.dropped: dict[str, list[bytes]] = {n: [] for n in IDS}
        self.cut: set[str] = set()
        self._ids: dict[bytes, list[bytes]] = {}

    def _send(self, msgs: list[Message]) -> None:
        for m in msgs:
            if m.src in self.cut or m.dst in self.cut or m.dst not in self.drivers:
                continue
            self.drivers[m.dst].deliver(m)

    async def start(self, n: str, seed: int) -> None:
        db = plyvel.DB(str(self.tmp / n), create_if_missing=True)
        self.dbs[n] = db
        storage = LevelDBStorage(db, CHANNEL)
        ledger = self.ledgers[n]
        node = RawNode(
            RaftConfig(n, IDS, election_ticks=10, applied=ledger.tip().raft_index), storage, random.Random(seed)
        )

        async def apply(ents: list[Entry]) -> None:
            await svc.apply(ents)

        async def restore(snap: Snapshot) -> None:
            await svc.restore(snap)

        async def forward(leader: str, data: bytes) -> bytes:
            if n in self.cut or leader in self.cut:
                raise OrdererError("leader unreachable")
            return await self.services[leader].submit(data)

        driver = RaftDriver(node, storage, self._send, apply, self.clock, TICK_S, restore=restore)
        svc = OrderingService(
            channel=CHANNEL,
            node_id=n,
            signer=BlockSigner(self.network.orderer_cert, self.network.orderer_key),
            batch=BATCH,
            msp_provider=lambda: self.network.msp,
            clock=self.clock,
            raft=DriverPort(driver),
            forward=forward,
            ledger_tip=ledger.tip,
            config=OrdererConfig(verify_creator=False, status_poll_ms=10),
            on_dropped=lambda ids, why: self.dropped[n].extend(ids),
        )
        self.drivers[n], self.services[n] = driver, svc
        await svc.start()

        async def consume() -> None:
            async for b in svc.committed():
                ledger.blocks.append(b)

        self.tasks[n] = [asyncio.create_task(driver.run()), asyncio.create_task(consume())]

    async def stop(self, n: str) -> None:
        await self.drivers[n].stop(transfer=False)
        run, consume = self.tasks.pop(n)
        await run
        consume.cancel()
        try:
            await consume
        except asyncio.CancelledError:
            pass
        await self.services.pop(n).stop()
        del self.drivers[n]
        self.dbs.pop(n).close()

    def leader(self, among: set[str] | None = None) -> str | None:
        leads = [n for n, d in self.drivers.items() if d.node.role == Role.LEADER and n in (among or set(IDS))]
        return leads[0] if len(leads) == 1 else None

    def ordered_ids(self, n: str) -> list[bytes]:
        out: list[bytes] = []
        for b in self.ledgers[n].blocks:
            ids = self._ids.get(b.hash)
            if ids is None:  # decode each block once: predicates call this on every step
                ids = self._ids[b.hash] = [t.tx_id for t in Block.decode(b.data).transactions]
            out.extend(ids)
        return out

    def check_chain(self, n: str) -> None:
        prev, ts = GENESIS_PREVIOUS_HASH, 0
        for i, b in enumerate(self.ledgers[n].blocks):
            blk = Block.decode(b.data)
            assert blk.number == i and blk.header.previous_hash == prev and blk.hash() == b.hash
            assert blk.header.timestamp_ms >= ts
            prev, ts = b.hash, blk.header.timestamp_ms
        ids = self.ordered_ids(n)
        assert len(ids) == len(set(ids)), f"{n}: a transaction was ordered twice"


@pytest.fixture
async def rnet(tmp_path: Path, network: Network) -> Any:
    net = RaftNet(tmp_path, network)
    for k, n in enumerate(IDS):
        await net.start(n, seed=k)
    yield net
    for n in list(net.drivers):
        await net.stop(n)


async def submit_all(net: RaftNet, at: str, txs: list[bytes]) -> list[Any]:
    task = asyncio.ensure_future(net.services[at].submit_many(txs))
    await run_until(net.clock, task.done, what="submission")
    return task.result()


async def test_forwarded_txs_are_ordered_identically_everywhere(rnet: RaftNet, make_tx: TxFactory) -> None:
    net = rnet
    await run_until(net.clock, lambda: net.leader() is not None, what="a leader")
    lead = net.leader()
    assert lead is not None
    followers = [n for n in IDS if n != lead]
    txs = [make_tx(i) for i in range(60)]
    for k, at in enumerate(followers):
        res = await submit_all(net, at, [t.encode() for t in txs[k * 30 : (k + 1) * 30]])
        assert res == [t.tx_id for t in txs[k * 30 : (k + 1) * 30]]
    want = {t.tx_id for t in txs}
    await run_until(net.clock, lambda: all(set(net.ordered_ids(n)) == want for n in IDS), what="all ordered")
    await net.clock.advance(0.5)
    first = [b.hash for b in net.ledgers[IDS[0]].blocks]
    for n in IDS:
        assert [b.hash for b in net.ledgers[n].blocks] == first  # same blocks, same order, once each
        net.check_chain(n)
    assert net.services[followers[0]].metrics.txs_forwarded == 30
    assert net.services[lead].metrics.blocks_cut == len(first)


async def test_leader_change_mid_stream(rnet: RaftNet, make_tx: TxFactory) -> None:
    net = rnet
    await run_until(net.clock, lambda: net.leader() is not None, what="a leader")
    old = net.leader()
    assert old is not None
    txs = [make_tx(i) for i in range(120)]
    await submit_all(net, old, [t.encode() for t in txs[:40]])
    await run_until(net.clock, lambda: len(net.ordered_ids(old)) >= 16, what="some blocks")
    # More txs reach the old leader, then it stops hearing from and reaching anyone.
    await net.services[old].submit_many([t.encode() for t in txs[40:80]])
    net.cut.add(old)
    rest = set(IDS) - {old}
    await run_until(net.clock, lambda: net.leader(rest) is not None, what="a new leader")
    new = net.leader(rest)
    assert new is not None and new != old
    # Clients resubmit everything not yet seen ordered (duplicates are refused, not re-ordered),
    # then the rest of the stream goes to the new leader.
    done = set(net.ordered_ids(new))
    res = await submit_all(net, new, [t.encode() for t in txs if t.tx_id not in done])
    assert all(isinstance(r, bytes | DuplicateTransaction) for r in res), res
    await submit_all(net, new, [t.encode() for t in txs[80:]])
    net.cut.clear()
    want = {t.tx_id for t in txs}
    await run_until(net.clock, lambda: all(set(net.ordered_ids(n)) == want for n in IDS), what="all ordered")
    await net.clock.advance(0.5)
    chains = {n: [b.hash for b in net.ledgers[n].blocks] for n in IDS}
    assert chains[old] == chains[new] == chains[next(iter(rest - {new}))]
    for n in IDS:
        net.check_chain(n)
    terms = {Block.decode(b.data).header.term for b in net.ledgers[new].blocks}
    assert len(terms) >= 2  # blocks from both leaders' terms are in the one chain


async def test_restart_resumes_without_redelivery(rnet: RaftNet, make_tx: TxFactory) -> None:
    net = rnet
    await run_until(net.clock, lambda: net.leader() is not None, what="a leader")
    lead = net.leader()
    assert lead is not None
    victim = next(n for n in IDS if n != lead)
    await submit_all(net, lead, [make_tx(i).encode() for i in range(24)])
    await run_until(net.clock, lambda: len(net.ledgers[victim].blocks) == 3, what="three blocks")
    await net.stop(victim)
    # The node crashed after its committer stored two of the three delivered blocks.
    net.ledgers[victim].blocks.pop()
    await submit_all(net, lead, [make_tx(i).encode() for i in range(24, 40)])
    await net.start(victim, seed=42)
    await run_until(net.clock, lambda: len(net.ledgers[victim].blocks) == 5, what="victim caught up")
    await net.clock.advance(0.5)
    assert [b.hash for b in net.ledgers[victim].blocks] == [b.hash for b in net.ledgers[lead].blocks]
    net.check_chain(victim)
    assert net.ordered_ids(victim) == [make_tx(i).tx_id for i in range(40)]


async def test_conf_changes_between_blocks_skip_nothing(rnet: RaftNet, make_tx: TxFactory) -> None:
    net = rnet
    await run_until(net.clock, lambda: net.leader() is not None, what="a leader")
    lead = net.leader()
    assert lead is not None
    svc = net.services[lead]
    # Blocks are being proposed (pipelined) when membership changes are asked for: one accepted
    # (a learner that never answers), one refused (o1 is already a voter).
    first = asyncio.ensure_future(svc.submit_many([make_tx(i).encode() for i in range(40)]))
    added = asyncio.ensure_future(svc.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "o9")))
    refused = asyncio.ensure_future(svc.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "o1")))
    second = asyncio.ensure_future(svc.submit_many([make_tx(i).encode() for i in range(40, 80)]))
    await run_until(net.clock, lambda: all(f.done() for f in (first, added, refused, second)), what="requests")
    assert isinstance(added.result(), int)
    assert isinstance(refused.exception(), ConfChangeRefused)
    want = [make_tx(i).tx_id for i in range(80)]
    await run_until(net.clock, lambda: all(net.ordered_ids(n) == want for n in IDS), what="all ordered")
    for n in IDS:
        assert net.services[n].metrics.blocks_skipped == 0 and not net.dropped[n]
        net.check_chain(n)
    assert "o9" in net.drivers[lead].status().learners


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_seeded_partitions_converge_on_one_chain(
    tmp_path: Path, network: Network, make_tx: TxFactory, seed: int
) -> None:
    """Random isolation and healing of nodes while clients keep submitting; at the end every
    submitted transaction is ordered exactly once and every node has the same chain."""
    rng = random.Random(seed)
    net = RaftNet(tmp_path, network)
    for k, n in enumerate(IDS):
        await net.start(n, seed=seed * 10 + k)
    try:
        await run_until(net.clock, lambda: net.leader() is not None, what=f"a first leader (seed {seed})")
        submitted: list[Any] = []
        for _ in range(30):
            action = rng.random()
            if action < 0.2 and not net.cut:
                net.cut.add(rng.choice(IDS))
            elif action < 0.35:
                net.cut.clear()
            # Any node that believes it leads gets submissions, an isolated old leader included:
            # its blocks never commit and must be reported dropped, then resubmitted.
            leaders = [n for n, d in net.drivers.items() if d.node.role == Role.LEADER]
            if leaders:
                txs = [make_tx(len(submitted) + i) for i in range(rng.randrange(1, 20))]
                submitted.extend(txs)
                await net.services[rng.choice(leaders)].submit_many([t.encode() for t in txs])
            for _ in range(rng.choice([5, 30, 100])):  # 10 ms steps: the drivers tick on each
                await net.clock.advance(0.01)
        net.cut.clear()
        want = {t.tx_id for t in submitted}
        for _ in range(20):  # clients resubmit whatever they have not seen ordered
            await run_until(net.clock, lambda: net.leader() is not None, what=f"a leader (seed {seed})")
            lead = net.leader()
            assert lead is not None
            ordered = set(net.ordered_ids(lead))
            missing = [t for t in submitted if t.tx_id not in ordered]
            if not missing:
                break
            await net.services[lead].submit_many([t.encode() for t in missing])
            for _ in range(50):
                await net.clock.advance(0.01)
        await run_until(
            net.clock, lambda: all(set(net.ordered_ids(n)) == want for n in IDS), what=f"convergence (seed {seed})"
        )
        chains = {n: [b.hash for b in net.ledgers[n].blocks] for n in IDS}
        assert chains["o0"] == chains["o1"] == chains["o2"], f"seed {seed}"
        for n in IDS:
            net.check_chain(n)
    finally:
        for n in list(net.drivers):
            await net.stop(n)
