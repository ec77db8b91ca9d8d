"""The system clock for consensus's asyncio shells (the Raft driver, the ordering service).

Each shell states the clock it needs as a protocol of its own (``consensus.raft.driver.Clock``:
``now()`` and ``sleep(seconds)``; ``consensus.orderer.port.Clock``: ``now_ms()`` and
``sleep_ms(ms)``); :class:`SystemClock` satisfies both, so one instance can serve a whole node.
The Raft core and the block cutter never read a clock: their shells pass them ticks and times.

Outside this class, nothing in ``consensus`` reads the system clock.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["SystemClock"]


class SystemClock:
    """The event loop's monotonic clock (``now``, ``sleep``) and the wall clock (``now_ms``)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def sleep_ms(self, ms: int) -> None:
        await asyncio.sleep(max(ms, 0) / 1000)
