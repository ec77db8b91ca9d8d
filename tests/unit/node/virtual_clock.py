"""A clock whose time moves only when the test advances it; satisfies ``secprivnode.clock.NodeClock``.

``sleep`` parks the caller until the test's :meth:`VirtualClock.advance` passes its deadline;
sleepers wake in deadline order (ties in the order they slept), each followed by a few turns of
the event loop so that what it started runs before the next one wakes. Nothing here reads the
system clock.

Imported by module name (the directory's ``conftest.py`` puts it on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Callable

# Event-loop turns after each wake-up: enough for a message to cross the in-memory transport
# (send, deliver task, handler, reply) before the next timer fires.
SETTLE_TURNS = 20
# Real seconds the waiting helpers yield between virtual steps, so that work on threads (ledger
# writes) lands; it bounds how fast virtual time runs, never what happens at a virtual instant.
THREAD_YIELD_S = 0.001


class VirtualClock:
    def __init__(self, wall_ms_at_start: int) -> None:
        self._now = 0.0
        self._wall0 = wall_ms_at_start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    # ------------------------------------------------------------------ NodeClock
    def now(self) -> float:
        return self._now

    def now_ms(self) -> int:
        return self._wall0 + round(self._now * 1000)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    async def sleep_ms(self, ms: int) -> None:
        await self.sleep(max(ms, 0) / 1000)

    # ------------------------------------------------------------------ the test's side
    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper whose deadline passes."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
                await _settle()
        self._now = target
        await _settle()

    async def run_until(self, predicate: Callable[[], bool], virtual_s: float, step_s: float, what: str) -> float:
        """Advance ``step_s`` at a time until ``predicate()``; the virtual seconds it took.
        Fails after ``virtual_s`` virtual seconds."""
        start = self._now
        while not predicate():
            if self._now - start > virtual_s:
                raise AssertionError(f"{what}: not reached within {virtual_s} virtual seconds")
            await self.advance(step_s)
            await asyncio.sleep(THREAD_YIELD_S)
        return self._now - start

    @contextlib.asynccontextmanager
    async def ticking(self, step_s: float) -> AsyncIterator[None]:
        """Keep time moving in the background (e.g. while nodes shut down and hand over leadership)."""

        async def tick() -> None:
            while True:
                await self.advance(step_s)
                await asyncio.sleep(THREAD_YIELD_S)

        task = asyncio.create_task(tick())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _settle() -> None:
    for _ in range(SETTLE_TURNS):
        await asyncio.sleep(0)
