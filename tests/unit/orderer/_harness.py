"""Test doubles for the ordering service: a fake clock, a scripted Raft log, a list ledger."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from consensus.orderer.service import LedgerTip, OrderedBlock, OrderingService
from consensus.raft.types import Entry, EntryKind, NotLeader, Role
from storage.model import GENESIS_PREVIOUS_HASH


async def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``pred`` on the event loop until it holds; fail after ``timeout`` real seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


class FakeClock:
    """Unix-ms time that moves only when a test advances it; sleepers wake in deadline order."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.t = start_ms
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now_ms(self) -> int:
        return self.t

    async def sleep_ms(self, ms: int) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + max(ms, 0), next(self._seq), fut))
        self._wake_due()
        await fut

    def advance(self, ms: int) -> None:
        self.t += ms
        self._wake_due()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self.t:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)


@dataclass(frozen=True)
class ScriptedStatus:
    leader: str | None
    term: int
    role: Role
    last_index: int


class ScriptedCluster:
    """Raft as a script: the test elects, replicates and commits; each node has its own log.

    Not a Raft implementation: no messages, no votes. It produces exactly the log shapes Raft
    can (a new leader's no-op, a deposed leader's unreplicated tail being overwritten) so the
    ordering service's apply rule can be tested step by step.
    """

    def __init__(self, nodes: list[str]) -> None:
        self.nodes = nodes
        self.logs: dict[str, list[Entry]] = {n: [] for n in nodes}
        self.applied: dict[str, int] = dict.fromkeys(nodes, 0)
        self.term = 0
        self.leader: str | None = None
        self.services: dict[str, OrderingService] = {}
        self.snapshots: dict[str, tuple[int, bytes]] = {}

    def port(self, node: str) -> ScriptedRaft:
        return ScriptedRaft(self, node)

    def elect(self, node: str) -> None:
        self.term += 1
        self.leader = node
        log = self.logs[node]
        log.append(Entry(self.term, len(log) + 1, EntryKind.EMPTY))

    def replicate(self, to: list[str] | None = None) -> None:
        assert self.leader is not None
        src = self.logs[self.leader]
        for n in to or self.nodes:
            self.logs[n] = list(src)

    def append_raw(self, node: str, data: bytes, term: int | None = None) -> Entry:
        log = self.logs[node]
        e = Entry(self.term if term is None else term, len(log) + 1, EntryKind.NORMAL, data)
        log.append(e)
        return e

    async def commit(self, upto: int | None = None, nodes: list[str] | None = None) -> None:
        for n in nodes or self.nodes:
            log = self.logs[n]
            hi = len(log) if upto is None else min(upto, len(log))
            ents = log[self.applied[n] : hi]
            self.applied[n] = max(self.applied[n], hi)
            if ents and n in self.services:
                await self.services[n].apply(ents)


class ScriptedRaft:
    def __init__(self, cluster: ScriptedCluster, node: str) -> None:
        self.c = cluster
        self.node = node

    def status(self) -> ScriptedStatus:
        c = self.c
        role = Role.LEADER if c.leader == self.node else Role.FOLLOWER
        return ScriptedStatus(c.leader, c.term, role, len(c.logs[self.node]))

    async def propose(self, data: bytes) -> int:
        if self.c.leader != self.node:
            raise NotLeader(self.c.leader)
        return self.c.append_raw(self.node, data).index

    def entries(self, lo: int, hi: int) -> list[Entry]:
        return self.c.logs[self.node][lo - 1 : hi - 1]

    def request_snapshot(self, index: int, data: bytes) -> None:
        self.c.snapshots[self.node] = (index, data)


@dataclass
class ListLedger:
    """A ledger that keeps delivered blocks in a list (what a committer would store)."""

    blocks: list[OrderedBlock] = field(default_factory=list)

    def tip(self) -> LedgerTip:
        if not self.blocks:
            return LedgerTip(0, GENESIS_PREVIOUS_HASH, 0, 0)
        b = self.blocks[-1]
        return LedgerTip(len(self.blocks), b.hash, b.header.index, b.header.timestamp_ms)


async def advance_until(clock: FakeClock, pred: Callable[[], bool], step_ms: int = 10, max_ms: int = 60_000) -> None:
    """Advance fake time in steps, letting the loop run between them, until ``pred`` holds."""
    moved = 0
    while not pred():
        if moved > max_ms:
            raise AssertionError(f"condition not reached within {max_ms} ms of fake time")
        clock.advance(step_ms)
        moved += step_ms
        await asyncio.sleep(0.001)


class VirtualClock:
    """One virtual time for the Raft drivers (``now``/``sleep`` in seconds) and the ordering
    services (``now_ms``/``sleep_ms``, unix milliseconds). Moves only in :meth:`advance`."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._start_ms = start_ms
        self._now = 0.0
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        # Work that takes real time but no virtual time (the Raft drivers' disk writes on their
        # writer threads): advance() waits for it, so virtual time never runs ahead of the disk.
        self.busy: Callable[[], bool] = lambda: False

    def now(self) -> float:
        return self._now

    def now_ms(self) -> int:
        return self._start_ms + round(self._now * 1000)

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(seconds, 0.0), next(self._seq), fut))
        await fut

    async def sleep_ms(self, ms: int) -> None:
        await self.sleep(ms / 1000)

    async def advance(self, seconds: float) -> None:
        deadline = time.monotonic() + 10.0
        while self.busy():
            assert time.monotonic() < deadline, "a disk write took over 10 real seconds"
            await asyncio.sleep(0.0005)
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now + 1e-9:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
        for _ in range(10):  # let woken tasks run to their next await
            await asyncio.sleep(0)


async def run_until(clock: VirtualClock, pred: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
    """Advance virtual time in 10 ms steps until ``pred`` holds (fail after ``timeout_s`` of it)."""
    waited = 0.0
    while not pred():
        if waited >= timeout_s:
            raise AssertionError(f"not reached within {timeout_s} virtual seconds: {what}")
        await clock.advance(0.01)
        waited += 0.01
