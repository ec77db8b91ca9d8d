"""The ordering service over a scripted Raft log: apply rule, leader tip, restart, snapshots."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from consensus.orderer.blocks import BlockSigner, assemble_block, verify_block_signature
from consensus.orderer.errors import DuplicateTransaction, InvalidTransaction, PoolFull
from consensus.orderer.service import OrdererConfig, OrderingService
from consensus.orderer.txcheck import inspect_tx
from consensus.raft.types import NotLeader
from crypto.batch import BatchVerifier
from storage.model import GENESIS_PREVIOUS_HASH, BatchConfig, Block

from ._harness import FakeClock, ListLedger, ScriptedCluster, advance_until, wait_until
from .conftest import CHANNEL, Network, TxFactory

NODES = ["o0", "o1", "o2"]
BATCH = BatchConfig(max_tx_count=10, preferred_max_bytes=64 * 1024, absolute_max_bytes=256 * 1024, timeout_ms=100)


@dataclass
class Net:
    cluster: ScriptedCluster
    clock: FakeClock
    ledgers: dict[str, ListLedger]
    dropped: dict[str, list[tuple[bytes, str]]] = field(default_factory=dict)
    transfers: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    consumers: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def svc(self, n: str) -> OrderingService:
        return self.cluster.services[n]


async def _consume(svc: OrderingService, ledger: ListLedger) -> None:
    async for b in svc.committed():
        ledger.blocks.append(b)


def _service(net: Net, network: Network, n: str, msp: Any = None, **cfg: object) -> OrderingService:
    async def forward(leader: str, data: bytes) -> bytes:
        return await net.svc(leader).submit(data)

    net.dropped.setdefault(n, [])
    net.transfers.setdefault(n, [])
    config = OrdererConfig(**{"verify_creator": False, **cfg})  # type: ignore[arg-type]
    return OrderingService(
        channel=CHANNEL,
        node_id=n,
        signer=BlockSigner(network.orderer_cert, network.orderer_key),
        batch=BATCH,
        msp_provider=lambda: msp or network.msp,
        clock=net.clock,
        raft=net.cluster.port(n),
        forward=forward,
        ledger_tip=net.ledgers[n].tip,
        config=config,
        on_dropped=lambda ids, why: net.dropped[n].extend((i, why) for i in ids),
        on_state_transfer=lambda num, h: net.transfers[n].append((num, h)),
        verifier=BatchVerifier(workers=1, inline_max=10_000) if config.verify_creator else None,
    )


async def _start(net: Net, network: Network, n: str, msp: Any = None, **cfg: object) -> OrderingService:
    svc = _service(net, network, n, msp, **cfg)
    net.cluster.services[n] = svc
    await svc.start()
    net.consumers[n] = asyncio.create_task(_consume(svc, net.ledgers[n]))
    return svc


async def _stop(net: Net, n: str) -> None:
    net.consumers[n].cancel()
    try:
        await net.consumers[n]
    except asyncio.CancelledError:
        pass
    await net.svc(n).stop()


@asynccontextmanager
async def scripted(network: Network, msp: Any = None, **cfg: object) -> AsyncIterator[Net]:
    net = Net(ScriptedCluster(list(NODES)), FakeClock(), {n: ListLedger() for n in NODES})
    for n in NODES:
        await _start(net, network, n, msp, **cfg)
    try:
        yield net
    finally:
        for n in NODES:
            await _stop(net, n)


def check_chain(blocks: list, network: Network) -> None:
    prev = GENESIS_PREVIOUS_HASH
    ts = 0
    for i, b in enumerate(blocks):
        blk = Block.decode(b.data)
        assert blk.number == i and b.number == i
        assert blk.header.previous_hash == prev
        assert blk.hash() == b.hash
        assert blk.header.data_hash == blk.computed_data_hash()
        assert blk.header.timestamp_ms >= ts
        assert verify_block_signature(blk.header, blk.signature, network.orderer_key.public)
        prev, ts = b.hash, blk.header.timestamp_ms
    ids = [t.tx_id for b in blocks for t in Block.decode(b.data).transactions]
    assert len(ids) == len(set(ids)), "a transaction was ordered twice"


def tx_ids(blocks: list) -> list[bytes]:
    return [t.tx_id for b in blocks for t in Block.decode(b.data).transactions]


async def test_leader_cuts_by_count_and_timeout_all_deliver_same_chain(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network) as net:
        c = net.cluster
        c.elect("o0")
        c.replicate()
        txs = [make_tx(i) for i in range(25)]
        res = await net.svc("o0").submit_many([t.encode() for t in txs])
        assert res == [t.tx_id for t in txs]
        await wait_until(lambda: len(c.logs["o0"]) == 3, what="two count-cut blocks")
        net.clock.advance(99)
        await asyncio.sleep(0.01)
        assert len(c.logs["o0"]) == 3  # the 5 left over wait for the timeout
        net.clock.advance(1)
        await wait_until(lambda: len(c.logs["o0"]) == 4, what="timeout cut")
        c.replicate()
        await c.commit()
        for n in NODES:
            await wait_until(lambda n=n: len(net.ledgers[n].blocks) == 3, what=f"{n} delivery")
        first = [b.hash for b in net.ledgers["o0"].blocks]
        for n in NODES:
            assert [b.hash for b in net.ledgers[n].blocks] == first
            check_chain(net.ledgers[n].blocks, network)
        assert tx_ids(net.ledgers["o1"].blocks) == [t.tx_id for t in txs]
        assert [b.tx_count for b in net.ledgers["o2"].blocks] == [10, 10, 5]
        m = net.svc("o0").metrics
        assert m.blocks_cut == 3 and m.txs_ordered == 25 and net.svc("o1").metrics.txs_ordered == 25


async def test_follower_forwards_and_no_forward_mode(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network) as net:
        net.cluster.elect("o1")
        tx = make_tx(1)
        assert await net.svc("o2").submit(tx.encode()) == tx.tx_id
        assert net.svc("o1").status().pool_txs == 1
        assert net.svc("o2").metrics.txs_forwarded == 1
        # A duplicate sent to a follower is refused by the leader, and the refusal comes back.
        with pytest.raises(DuplicateTransaction):
            await net.svc("o0").submit(tx.encode())
    async with scripted(network, forward=False) as net:
        net.cluster.elect("o1")
        with pytest.raises(NotLeader) as ei:
            await net.svc("o0").submit(make_tx(2).encode())
        assert ei.value.leader_hint == "o1"


async def test_admission_errors(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network, pool_max_txs=3) as net:
        net.cluster.elect("o0")
        svc = net.svc("o0")
        res = await svc.submit_many([make_tx(i).encode() for i in range(4)] + [b"junk", make_tx(0).encode()])
        assert isinstance(res[3], PoolFull)
        assert isinstance(res[4], InvalidTransaction) and res[4].reason == "malformed"
        assert isinstance(res[5], DuplicateTransaction)
        assert svc.metrics.rejects == {"pool_full": 1, "malformed": 1, "duplicate": 1}
        assert svc.status().pool_txs == 3


async def test_structural_check_on_worker_processes(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network, inspect_workers=1, inspect_parallel_min=4) as net:
        net.cluster.elect("o0")
        txs = [make_tx(i).encode() for i in range(8)]
        res = await net.svc("o0").submit_many([*txs[:5], b"junk", txs[0], *txs[5:]])
        assert res[:5] == [make_tx(i).tx_id for i in range(5)]
        assert isinstance(res[5], InvalidTransaction) and res[5].reason == "malformed"
        assert isinstance(res[6], DuplicateTransaction)
        assert res[7:] == [make_tx(i).tx_id for i in range(5, 8)]
        await advance_until(net.clock, lambda: len(net.cluster.logs["o0"]) == 2)
        net.cluster.replicate()
        await net.cluster.commit()
        await wait_until(lambda: len(net.ledgers["o1"].blocks) == 1)
        assert tx_ids(net.ledgers["o1"].blocks) == [make_tx(i).tx_id for i in range(8)]


async def test_worker_refuses_non_bytes_per_item_like_inline(network: Network, make_tx: TxFactory) -> None:
    items: list[Any] = [make_tx(i).encode() for i in range(4)]
    items.insert(2, "a str, not bytes")
    for workers in (0, 1):
        async with scripted(network, inspect_workers=workers, inspect_parallel_min=4) as net:
            net.cluster.elect("o0")
            res = await net.svc("o0").submit_many(items)
            assert [r for k, r in enumerate(res) if k != 2] == [make_tx(i).tx_id for i in range(4)], workers
            assert isinstance(res[2], InvalidTransaction) and res[2].reason == "malformed", workers


async def test_creator_verification(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network, verify_creator=True) as net:
        net.cluster.elect("o0")
        good, bad = make_tx(1), make_tx(2, sign=False)
        res = await net.svc("o0").submit_many([good.encode(), bad.encode()])
        assert res[0] == good.tx_id
        assert isinstance(res[1], InvalidTransaction) and res[1].reason == "bad_signature"
        await advance_until(net.clock, lambda: len(net.cluster.logs["o0"]) == 2)
        net.cluster.replicate()
        await net.cluster.commit()
        await wait_until(lambda: len(net.ledgers["o2"].blocks) == 1)
        assert tx_ids(net.ledgers["o2"].blocks) == [good.tx_id]
        # The refused transaction left the pool: a correctly signed resubmission would be accepted.
        assert net.svc("o0").status().pool_txs == 0


async def test_txs_verified_after_losing_leadership_are_dropped(network: Network, make_tx: TxFactory) -> None:
    gate = threading.Event()

    class GatedMSP:
        """Holds the creator check (it runs in an executor thread) until the test opens the gate."""

        def validate(self, cert: bytes, *, now: int, roles: Any = None) -> Any:
            gate.wait(10)
            return network.msp.validate(cert, now=now, roles=roles)

    async with scripted(network, msp=GatedMSP(), verify_creator=True) as net:
        c = net.cluster
        c.elect("o0")
        tx = make_tx(1)
        sub = asyncio.create_task(net.svc("o0").submit(tx.encode()))
        await wait_until(lambda: net.svc("o0").status().pool_txs == 1, what="admitted, being verified")
        c.elect("o1")  # o0 is deposed while the check runs
        await advance_until(net.clock, lambda: not net.svc("o0").is_leader)
        gate.set()
        assert await sub == tx.tx_id  # it was admitted...
        await wait_until(lambda: net.dropped["o0"] == [(tx.tx_id, "leader_changed")], what="drop report")
        assert net.svc("o0").status().pool_txs == 0  # ...but never reaches a block of o0's
        assert len(c.logs["o0"]) == 1
        # The client resubmits to the new leader, which orders it once.
        assert await net.svc("o1").submit(tx.encode()) == tx.tx_id


async def test_new_leader_continues_from_uncommitted_tail(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network) as net:
        c = net.cluster
        c.elect("o0")
        await net.svc("o0").submit_many([make_tx(i).encode() for i in range(20)])
        await wait_until(lambda: len(c.logs["o0"]) == 3, what="two blocks proposed")
        c.replicate()  # replicated, not committed
        c.elect("o1")
        await net.svc("o1").submit_many([make_tx(i).encode() for i in range(20, 30)])
        await wait_until(lambda: len(c.logs["o1"]) == 5, what="o1's block")
        # o1 knew the tail's transactions: resubmitting one to it is a duplicate.
        with pytest.raises(DuplicateTransaction):
            await net.svc("o1").submit(make_tx(3).encode())
        c.replicate()
        await c.commit()
        for n in NODES:
            await wait_until(lambda n=n: len(net.ledgers[n].blocks) == 3, what=f"{n} delivery")
            check_chain(net.ledgers[n].blocks, network)
        assert tx_ids(net.ledgers["o2"].blocks) == [make_tx(i).tx_id for i in range(30)]
        assert all(not d for d in net.dropped.values())


async def test_deposed_leaders_unreplicated_block_is_reported_lost(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network) as net:
        c = net.cluster
        c.elect("o0")
        c.replicate()
        lost = [make_tx(i) for i in range(10)]
        await net.svc("o0").submit_many([t.encode() for t in lost])
        await wait_until(lambda: len(c.logs["o0"]) == 2, what="o0's block")
        c.elect("o1")  # o0's block never left o0
        kept = [make_tx(i) for i in range(10, 20)]
        await net.svc("o1").submit_many([t.encode() for t in kept])
        await wait_until(lambda: len(c.logs["o1"]) == 3, what="o1's block")
        c.replicate()  # overwrites o0's index 2
        await c.commit()
        for n in NODES:
            await wait_until(lambda n=n: len(net.ledgers[n].blocks) == 1, what=f"{n} delivery")
        assert all(net.ledgers[n].blocks[0].hash == net.ledgers["o1"].blocks[0].hash for n in NODES)
        assert tx_ids(net.ledgers["o0"].blocks) == [t.tx_id for t in kept]
        assert sorted(i for i, _ in net.dropped["o0"]) == sorted(t.tx_id for t in lost)
        # The lost transactions may be resubmitted to the new leader.
        assert await net.svc("o1").submit(lost[0].encode()) == lost[0].tx_id


async def test_stale_entry_skipped_by_every_node(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network) as net:
        c = net.cluster
        c.elect("o0")
        await net.svc("o0").submit_many([make_tx(i).encode() for i in range(10)])
        await wait_until(lambda: len(c.logs["o0"]) == 2, what="block 0")
        # A block 0 built on the same (genesis) tip by someone else, committed after ours.
        info = inspect_tx(make_tx(99).encode(), CHANNEL, 1 << 20)
        stale = assemble_block(
            channel=CHANNEL,
            number=0,
            previous_hash=GENESIS_PREVIOUS_HASH,
            txs=[info],
            timestamp_ms=1,
            term=c.term,
            index=3,
            signer=BlockSigner(network.orderer_cert, network.orderer_key),
        )
        c.append_raw("o0", stale.data)
        # The leader did not expect that entry: its next block claims index 3 but lands at 4,
        # so every node skips it too and the leader resynchronises its tip.
        batch = [make_tx(i) for i in range(10, 20)]
        await net.svc("o0").submit_many([t.encode() for t in batch])
        await wait_until(lambda: len(c.logs["o0"]) == 4, what="mis-indexed block")
        c.replicate()
        await c.commit()
        batch_ids = sorted(t.tx_id for t in batch)
        for n in NODES:
            await wait_until(lambda n=n: net.svc(n).status().applied_index == 4)
            assert net.svc(n).metrics.blocks_skipped == 2
            assert net.dropped[n][0] == (info[0], "stale")
            assert sorted(i for i, _ in net.dropped[n][1:]) == batch_ids
        assert {why for _, why in net.dropped["o0"][1:]} == {"lost"}
        # Clients resubmit the dropped transactions; the chain continues from block 0.
        await net.svc("o0").submit_many([t.encode() for t in batch])
        await wait_until(lambda: len(c.logs["o0"]) == 5, what="block 1")
        c.replicate()
        await c.commit()
        for n in NODES:
            await wait_until(lambda n=n: len(net.ledgers[n].blocks) == 2, what=f"{n} delivery")
            check_chain(net.ledgers[n].blocks, network)
            assert tx_ids(net.ledgers[n].blocks[1:]) == [t.tx_id for t in batch]


async def test_restart_resumes_without_redelivery(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network) as net:
        c = net.cluster
        c.elect("o0")
        await net.svc("o0").submit_many([make_tx(i).encode() for i in range(30)])
        await wait_until(lambda: len(c.logs["o0"]) == 4, what="three blocks")
        c.replicate()
        await c.commit()
        await wait_until(lambda: len(net.ledgers["o2"].blocks) == 3)
        # o2 crashes after committing only two of the three blocks to its ledger.
        await _stop(net, "o2")
        net.ledgers["o2"].blocks = net.ledgers["o2"].blocks[:2]
        c.applied["o2"] = 0  # its Raft log is replayed from the start
        await _start(net, network, "o2")
        await c.commit(nodes=["o2"])
        await wait_until(lambda: len(net.ledgers["o2"].blocks) == 3, what="the missing block")
        await net.svc("o0").submit_many([make_tx(i).encode() for i in range(30, 40)])
        await wait_until(lambda: len(c.logs["o0"]) == 5, what="block 3")
        c.replicate()
        await c.commit()
        for n in NODES:
            await wait_until(lambda n=n: len(net.ledgers[n].blocks) == 4, what=f"{n} delivery")
        await asyncio.sleep(0.01)
        assert [b.hash for b in net.ledgers["o2"].blocks] == [b.hash for b in net.ledgers["o0"].blocks]
        check_chain(net.ledgers["o2"].blocks, network)


async def test_snapshot_round_trip_requests_state_transfer(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network, snapshot_every_blocks=2) as net:
        c = net.cluster
        c.elect("o0")
        await net.svc("o0").submit_many([make_tx(i).encode() for i in range(20)])
        await wait_until(lambda: len(c.logs["o0"]) == 3)
        c.replicate(["o0", "o1"])
        await c.commit(nodes=["o0", "o1"])
        await wait_until(lambda: len(net.ledgers["o1"].blocks) == 2)
        # Every two applied blocks the service hands Raft its state as snapshot data.
        index, snap = c.snapshots["o1"]
        assert index == 3 and snap == net.svc("o1").snapshot_data()
        net.svc("o2").restore_snapshot(snap, index=3)
        tip = net.ledgers["o1"].blocks[-1]
        assert net.transfers["o2"] == [(1, tip.hash)]
        assert net.svc("o2").status().next_number == 2
        # The node fetched blocks 0-1 from peers; the next committed block follows them.
        net.ledgers["o2"].blocks = list(net.ledgers["o1"].blocks)
        c.replicate()
        c.applied["o2"] = 3
        await net.svc("o0").submit_many([make_tx(i).encode() for i in range(20, 30)])
        await wait_until(lambda: len(c.logs["o0"]) == 4)
        c.replicate()
        await c.commit()
        await wait_until(lambda: len(net.ledgers["o2"].blocks) == 3)
        check_chain(net.ledgers["o2"].blocks, network)


async def test_delivery_queue_applies_backpressure(network: Network, make_tx: TxFactory) -> None:
    async with scripted(network, commit_queue_max=1) as net:
        c = net.cluster
        c.elect("o0")
        await net.svc("o0").submit_many([make_tx(i).encode() for i in range(40)])
        await wait_until(lambda: len(c.logs["o0"]) == 5)
        c.replicate()
        net.consumers["o2"].cancel()  # o2's committer stalls
        apply = asyncio.create_task(c.commit(nodes=["o2"]))
        await asyncio.sleep(0.02)
        assert not apply.done()  # Raft apply waits for the committer
        assert net.svc("o2").status().delivery_queue == 1
        got = [await anext(net.svc("o2").committed()) for _ in range(4)]
        await apply
        assert [b.number for b in got] == [0, 1, 2, 3]
