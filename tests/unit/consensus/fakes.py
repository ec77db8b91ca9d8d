"""Test doubles for the Raft driver: a manual clock and a wait_until that advances it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable


class FakeClock:
    """Virtual time: ``sleep`` parks until ``advance`` moves time past its deadline."""

    def __init__(self) -> None:
        self._now = 0.0
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
        # Let woken tasks run to their next await.
        for _ in range(20):
            await asyncio.sleep(0)


async def wait_until(clock: FakeClock, predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.01) -> None:
    """Advance virtual time in steps until ``predicate`` holds; fail after ``timeout_s``."""
    waited = 0.0
    while not predicate():
        if waited >= timeout_s:
            raise AssertionError(f"condition not reached within {timeout_s} virtual seconds")
        await clock.advance(step_s)
        waited += step_s
