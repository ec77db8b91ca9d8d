"""The asyncio driver with three nodes in one event loop: a fake transport (direct delivery into
each driver's bounded inbox), a fake clock, and LevelDB storage in tmp_path."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path
from typing import Any

import plyvel
import pytest
from fakes import FakeClock, wait_until

from consensus.raft import (
    ConfChange,
    ConfChangeRefused,
    ConfChangeType,
    Entry,
    EntryKind,
    Message,
    MsgType,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RawNode,
    Role,
    Snapshot,
    Unavailable,
)
from consensus.raft.driver import RaftDriver
from consensus.raft.leveldb_storage import LevelDBStorage
from crypto.encoding import decode, encode

IDS = ("council-node1", "council-node2", "council-node3")
TICK_S = 0.01


def check_durable(storage: LevelDBStorage, m: Message) -> None:
    """Nothing leaves before the state it depends on is on disk (Raft paper Figure 2)."""
    hs = storage.hard_state()
    assert hs.term >= m.term or m.type in (MsgType.PRE_VOTE, MsgType.PRE_VOTE_RESP), (m, hs)
    if m.type == MsgType.VOTE:
        assert hs.vote == m.src and hs.term == m.term, (m, hs)
    if m.type == MsgType.VOTE_RESP and not m.reject:
        assert hs.vote == m.dst and hs.term == m.term, (m, hs)
    if m.type == MsgType.APP:
        for e in m.entries:
            assert storage.last_index() >= e.index and storage.term(e.index) == e.term, (m, e)
    if m.type == MsgType.APP_RESP and not m.reject:
        assert storage.last_index() >= m.index, (m, storage.last_index())


class Cluster:
    def __init__(self, tmp: Path, clock: FakeClock) -> None:
        self.tmp = tmp
        self.clock = clock
        self.drivers: dict[str, RaftDriver] = {}
        clock.busy = lambda: any(d.writing for d in self.drivers.values())
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.dbs: dict[str, Any] = {}
        self.applied: dict[str, list[Entry]] = {i: [] for i in IDS}
        self.app_index: dict[str, int] = dict.fromkeys(IDS, 0)  # the application's durable applied index
        self.down: set[str] = set()
        self.sent: list[Message] = []

    def start(self, nid: str, seed: int) -> None:
        db = plyvel.DB(str(self.tmp / nid), create_if_missing=True)
        self.dbs[nid] = db
        storage = LevelDBStorage(db, "city")
        cfg = RaftConfig(nid, IDS, election_ticks=10, applied=self.app_index[nid])
        node = RawNode(cfg, storage, random.Random(seed))

        def send(msgs: list[Message]) -> None:
            for m in msgs:
                check_durable(storage, m)
                # Through the wire form, as the real transport does.
                m2 = Message.from_wire(decode(encode(m.to_wire())))
                self.sent.append(m2)
                if m2.dst not in self.down and m2.dst in self.drivers:
                    self.drivers[m2.dst].deliver(m2)

        async def apply(ents: list[Entry]) -> None:
            for e in ents:
                assert e.index == self.app_index[nid] + 1, "entries applied in order, exactly once"
                self.app_index[nid] = e.index
                self.applied[nid].append(e)

        async def restore(snap: Snapshot) -> None:
            self.app_index[nid] = max(self.app_index[nid], snap.index)

        drv = RaftDriver(node, storage, send, apply, self.clock, TICK_S, restore=restore)
        self.drivers[nid] = drv
        self.tasks[nid] = asyncio.create_task(drv.run(), name=f"driver-{nid}")
        self.down.discard(nid)

    async def stop(self, nid: str, transfer: bool = False) -> None:
        await self.drivers[nid].stop(transfer=transfer)
        await self.tasks.pop(nid)
        self.down.add(nid)
        del self.drivers[nid]
        self.dbs.pop(nid).close()

    async def stop_all(self) -> None:
        for nid in list(self.drivers):
            await self.stop(nid)

    def leader(self) -> str | None:
        leads = [n for n, d in self.drivers.items() if d.node.role == Role.LEADER]
        return leads[0] if len(leads) == 1 else None

    def data(self, nid: str) -> list[bytes]:
        return [e.data for e in self.applied[nid] if e.kind == EntryKind.NORMAL]


@pytest.fixture
async def cluster(tmp_path: Path) -> Any:
    c = Cluster(tmp_path, FakeClock())
    for k, nid in enumerate(IDS):
        c.start(nid, seed=k)
    yield c
    await c.stop_all()


async def elect(c: Cluster) -> str:
    await wait_until(c.clock, lambda: c.leader() is not None, timeout_s=5)
    lead = c.leader()
    assert lead is not None
    await wait_until(c.clock, lambda: all(d.leader == lead for d in c.drivers.values()), timeout_s=5)
    return lead


async def test_elect_replicate_commit(cluster: Cluster) -> None:
    c = cluster
    lead = await elect(c)
    idx = [await c.drivers[lead].propose(f"block-{i}".encode()) for i in range(5)]
    assert idx == sorted(idx) and len(set(idx)) == 5
    want = [f"block-{i}".encode() for i in range(5)]
    await wait_until(c.clock, lambda: all(c.data(n) == want for n in IDS), timeout_s=5)
    follower = next(n for n in IDS if n != lead)
    with pytest.raises(NotLeader) as err:
        await c.drivers[follower].propose(b"nope")
    assert err.value.leader_hint == lead


async def test_restart_from_leveldb_recovers(cluster: Cluster) -> None:
    c = cluster
    lead = await elect(c)
    await c.drivers[lead].propose(b"before")
    await wait_until(c.clock, lambda: all(b"before" in c.data(n) for n in IDS), timeout_s=5)
    victim = next(n for n in IDS if n != lead)
    await c.stop(victim)
    for i in range(3):
        await c.drivers[lead].propose(f"while-down-{i}".encode())
    c.start(victim, seed=99)
    # Its hard state and log come back from disk; it does not re-apply what its application
    # already applied (RaftConfig.applied), and it catches up with what it missed.
    st = c.drivers[victim].node.status()
    assert st.term >= 1 and st.commit >= c.app_index[victim]
    want = [b"before"] + [f"while-down-{i}".encode() for i in range(3)]
    await wait_until(c.clock, lambda: c.data(victim) == want, timeout_s=5)


async def test_whole_cluster_restart(cluster: Cluster) -> None:
    c = cluster
    lead = await elect(c)
    await c.drivers[lead].propose(b"x")
    await wait_until(c.clock, lambda: all(c.data(n) == [b"x"] for n in IDS), timeout_s=5)
    terms = {n: c.drivers[n].node.term for n in IDS}
    await c.stop_all()
    for k, nid in enumerate(IDS):
        c.start(nid, seed=10 + k)
        assert c.drivers[nid].node.term == terms[nid]  # the persisted term survives
    lead = await elect(c)
    await c.drivers[lead].propose(b"y")
    await wait_until(c.clock, lambda: all(c.data(n) == [b"x", b"y"] for n in IDS), timeout_s=5)


async def test_graceful_stop_transfers_leadership(cluster: Cluster) -> None:
    c = cluster
    lead = await elect(c)
    await c.stop(lead, transfer=True)
    # The TimeoutNow made another node leader without waiting for an election timeout.
    assert any(m.type.name == "TIMEOUT_NOW" for m in c.sent)
    new = await elect(c)
    assert new != lead
    await c.drivers[new].propose(b"after-transfer")
    others = [n for n in IDS if n != lead]
    await wait_until(c.clock, lambda: all(b"after-transfer" in c.data(n) for n in others), timeout_s=5)


async def test_membership_change_and_refusal(cluster: Cluster) -> None:
    c = cluster
    lead = await elect(c)
    with pytest.raises(ConfChangeRefused):
        await c.drivers[lead].propose_conf_change(ConfChange(ConfChangeType.REMOVE, lead))
    victim = next(n for n in IDS if n != lead)
    await c.stop(victim)
    await wait_until(c.clock, lambda: not c.drivers[lead].node.status().progress[victim].active, timeout_s=5)
    third = next(n for n in IDS if n not in (lead, victim))
    # Removing the reachable follower would leave {lead, victim} with only one reachable voter.
    with pytest.raises(ConfChangeRefused, match="no quorum"):
        await c.drivers[lead].propose_conf_change(ConfChange(ConfChangeType.REMOVE, third))
    # Removing the unreachable one is fine: {lead, third} are both reachable.
    await c.drivers[lead].propose_conf_change(ConfChange(ConfChangeType.REMOVE, victim))
    await wait_until(c.clock, lambda: victim not in c.drivers[third].node.status().voters, timeout_s=5)
    assert c.drivers[lead].node.status().voters == tuple(sorted((lead, third)))


async def test_snapshot_request_compacts_the_log(cluster: Cluster) -> None:
    c = cluster
    lead = await elect(c)
    for i in range(10):
        await c.drivers[lead].propose(f"b{i}".encode())
    await wait_until(c.clock, lambda: c.app_index[lead] >= 12, timeout_s=5)
    drv = c.drivers[lead]
    drv._snapshot_keep = 2
    fut = drv.request_snapshot(c.app_index[lead], b"state")
    await wait_until(c.clock, fut.done, timeout_s=1)
    snap = fut.result()
    assert snap == drv.storage.snapshot() and snap.index == c.app_index[lead] and snap.data == b"state"
    assert drv.storage.first_index() == c.app_index[lead] - 1
    assert snap.conf_state.voters == tuple(sorted(IDS))
    # Not newer than the current snapshot: the current one stands. Beyond what is applied: a
    # typed error, and the loop is unharmed.
    stale = drv.request_snapshot(snap.index, b"again")
    await wait_until(c.clock, stale.done, timeout_s=1)
    assert stale.result() == snap
    early = drv.request_snapshot(c.app_index[lead] + 100, b"future")
    await wait_until(c.clock, early.done, timeout_s=1)
    with pytest.raises(Unavailable):
        early.result()
    await drv.propose(b"still running")


async def test_inbox_is_bounded(tmp_path: Path) -> None:
    from consensus.raft import MemoryStorage

    storage = MemoryStorage()
    node = RawNode(RaftConfig("a", ("a",)), storage, random.Random(1))

    async def apply(ents: list[Entry]) -> None:
        return None

    drv = RaftDriver(node, storage, lambda m: None, apply, FakeClock(), TICK_S, inbox_max=3)
    msg = Message(MsgType.HEARTBEAT, src="b", dst="a")
    assert [drv.deliver(msg) for _ in range(5)] == [True, True, True, False, False]
    assert drv.dropped_messages == 2


async def test_malformed_message_is_dropped_and_reported() -> None:
    from consensus.raft import MemoryStorage

    storage = MemoryStorage()
    node = RawNode(RaftConfig("a", ("a", "b", "c")), storage, random.Random(1))
    seen: list[str] = []

    async def apply(ents: list[Entry]) -> None:
        return None

    clock = FakeClock()
    drv = RaftDriver(
        node, storage, lambda m: None, apply, clock, TICK_S, on_violation=lambda peer, exc: seen.append(peer)
    )
    task = asyncio.create_task(drv.run())
    bad = Message(MsgType.APP, "b", "a", term=3, index=0, entries=(Entry(3, 5),))
    drv.deliver(bad)
    await wait_until(clock, lambda: drv.protocol_violations == 1, timeout_s=1)
    assert seen == ["b"] and node.term == 1  # the bad message changed nothing
    await drv.stop()
    await task


class GatedStorage:
    """LevelDB storage whose durable writes wait for a gate: a disk that is slow on demand."""

    def __init__(self, inner: LevelDBStorage) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.writer_threads: set[str] = set()
        self.snapshot_threads: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create_snapshot(self, index: int, cs: Any, data: bytes) -> Snapshot:
        self.snapshot_threads.add(threading.current_thread().name)
        return self.inner.create_snapshot(index, cs, data)

    def prepare_save(self, hard: Any, entries: list[Entry], snap: Snapshot | None) -> Any:
        pending = self.inner.prepare_save(hard, entries, snap)
        outer = self

        class Gated:
            blocking = pending.blocking

            def write(self) -> None:
                if self.blocking:  # only synced writes go to the writer thread and wait for the disk
                    outer.writer_threads.add(threading.current_thread().name)
                    assert outer.gate.wait(timeout=10), "gate never opened"
                pending.write()

            def finish(self) -> None:
                pending.finish()

        return Gated()


async def real_wait(pred: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in real time"
        await asyncio.sleep(0.001)


async def single_gated_node(tmp_path: Path) -> tuple[RaftDriver, GatedStorage, list[Entry], list[Message], Any]:
    db = plyvel.DB(str(tmp_path / "a"), create_if_missing=True)
    storage = GatedStorage(LevelDBStorage(db, "city"))
    node = RawNode(RaftConfig("a", ("a",), election_ticks=10), storage, random.Random(1))
    applied: list[Entry] = []
    sent: list[Message] = []

    async def apply(ents: list[Entry]) -> None:
        applied.extend(ents)

    clock = FakeClock()
    drv = RaftDriver(node, storage, sent.extend, apply, clock, TICK_S)
    clock.busy = lambda: drv.writing
    drv_task = asyncio.create_task(drv.run())
    await wait_until(clock, lambda: drv.role == Role.LEADER, timeout_s=5)
    await wait_until(clock, lambda: bool(applied), timeout_s=5)  # the new leader's empty entry
    return drv, storage, applied, sent, (db, drv_task)


async def test_loop_keeps_serving_while_the_disk_syncs(tmp_path: Path) -> None:
    drv, storage, applied, _, (db, task) = await single_gated_node(tmp_path)
    try:
        storage.gate.clear()
        last = storage.last_index()
        proposal = asyncio.create_task(drv.propose(b"block"))
        await real_wait(lambda: drv.writing)
        # Other tasks run while the write waits on the disk...
        ticks = 0
        for _ in range(50):
            await asyncio.sleep(0)
            ticks += 1
        assert ticks == 50 and drv.writing
        # ...but nothing of that Ready happens before it is durable.
        assert not proposal.done() and storage.last_index() == last
        assert all(e.data != b"block" for e in applied)
        storage.gate.set()
        index = await asyncio.wait_for(proposal, 10)
        assert index == last + 1 and storage.term(index) == drv.node.term
        await real_wait(lambda: any(e.data == b"block" for e in applied))
        assert storage.writer_threads == {"raft-write-a_0"}  # one writer thread, not the loop's
    finally:
        storage.gate.set()
        await drv.stop()
        await task
        db.close()


async def test_cancelled_driver_finishes_the_write_first(tmp_path: Path) -> None:
    drv, storage, _, _, (db, task) = await single_gated_node(tmp_path)
    try:
        storage.gate.clear()
        last = storage.last_index()
        proposal = asyncio.create_task(drv.propose(b"block"))
        await real_wait(lambda: drv.writing)
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done(), "the driver gave up on a write still running on its thread"
        storage.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert storage.last_index() == last + 1  # finished: the storage shows what is on disk
        with pytest.raises(ProposalDropped):  # the driver stopped before confirming it
            await proposal
    finally:
        storage.gate.set()
        db.close()


async def test_inline_persist_when_asked(tmp_path: Path) -> None:
    db = plyvel.DB(str(tmp_path / "a"), create_if_missing=True)
    storage = GatedStorage(LevelDBStorage(db, "city"))
    node = RawNode(RaftConfig("a", ("a",), election_ticks=10), storage, random.Random(1))

    async def apply(ents: list[Entry]) -> None:
        return None

    clock = FakeClock()
    drv = RaftDriver(node, storage, lambda m: None, apply, clock, TICK_S, persist_off_loop=False)
    task = asyncio.create_task(drv.run())
    try:
        await wait_until(clock, lambda: drv.role == Role.LEADER, timeout_s=5)
        assert storage.writer_threads == set() and storage.last_index() >= 1  # saved through save()
    finally:
        await drv.stop()
        await task
        db.close()


async def test_snapshot_is_written_on_the_writer_thread(tmp_path: Path) -> None:
    drv, storage, applied, _, (db, task) = await single_gated_node(tmp_path)
    try:
        index = await drv.propose(b"block")
        await real_wait(lambda: any(e.index == index for e in applied))
        snap = await asyncio.wait_for(drv.request_snapshot(index, b"state"), 10)
        assert (snap.index, snap.data) == (index, b"state") and storage.snapshot() == snap
        assert storage.snapshot_threads == {"raft-write-a_0"}  # not the event loop's thread
    finally:
        await drv.stop()
        await task
        db.close()
