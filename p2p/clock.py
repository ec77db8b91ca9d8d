"""The clock the transport and the gossip service read, injected so that one instance serves a
whole node (and a test can pass a virtual one).

* ``now()``: monotonic seconds, for durations — bans, keepalives, dial back-off;
* ``now_ms()``: unix milliseconds, for what is judged against the calendar — certificate
  validity, gossip membership ages;
* ``sleep(seconds)``: wait on the same clock.

I/O timeouts on sockets (``asyncio.wait_for`` around a dial or a handshake) stay on the event
loop's own clock: they guard real I/O, which a virtual clock cannot speed up.

The sans-I/O cores never read a clock: their shells pass them the time. Outside
:class:`SystemClock`, nothing in ``p2p`` reads the system clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float: ...

    def now_ms(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The event loop's monotonic clock and the system's wall clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
