"""Test doubles for the Raft driver: a manual clock and a wait_until that advances it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable


class FakeClock:
    """Virtual time: ``sleep`` parks until ``advance`` moves time past its deadline."""

    def __init__(self) -> None:
        self._now = 0.0
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        # Work that takes real time but no virtual time (the drivers' disk writes on their writer
        # threads): advance() waits until it reports False, so virtual time never runs ahead of it.
        self.busy: Callable[[], bool] = lambda: False

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        await wait_idle(self.busy)
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
        # Let woken tasks run to their next await.
        for _ in range(20):
            await asyncio.sleep(0)


# Real seconds a disk write may take before a virtual-time test gives up on it.
IDLE_TIMEOUT_S = 10.0


async def wait_idle(busy: Callable[[], bool]) -> None:
    """Let the loop run (real time) until ``busy()`` is False; fail after IDLE_TIMEOUT_S."""
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    while busy():
        if time.monotonic() > deadline:
            raise AssertionError(f"still busy after {IDLE_TIMEOUT_S} real seconds")
        await asyncio.sleep(0.0005)


async def wait_until(clock: FakeClock, predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.01) -> None:
    """Advance virtual time in steps until ``predicate`` holds; fail after ``timeout_s``."""
    waited = 0.0
    while not predicate():
        if waited >= timeout_s:
            raise AssertionError(f"condition not reached within {timeout_s} virtual seconds")
        await clock.advance(step_s)
        waited += step_s
