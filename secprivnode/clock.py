"""The node's one clock, passed from assembly to every component that waits or reads the time.

Each layer states what it needs as a protocol of its own — the Raft driver ``now()`` and
``sleep(seconds)``, the ordering service ``now_ms()`` and ``sleep_ms(ms)``, the transport and
gossip ``now()``, ``now_ms()`` and ``sleep(seconds)`` — since ``consensus`` and ``p2p`` may not
import each other. :class:`NodeClock` is the union, and one instance satisfies them all:

* ``now()``: monotonic seconds (timeouts, ticks, durations);
* ``now_ms()``: unix milliseconds (block timestamps, certificate validity);
* ``sleep(seconds)`` / ``sleep_ms(ms)``: wait on the same clock.

The system clock is :class:`consensus.clock.SystemClock`, which satisfies ``p2p``'s protocol too.
A test passes a virtual clock and the whole node runs on it. The node's channel modules never
read the system clock themselves.
"""

from __future__ import annotations

from typing import Protocol

from consensus.clock import SystemClock

__all__ = ["NodeClock", "SystemClock"]


class NodeClock(Protocol):
    def now(self) -> float: ...

    def now_ms(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...

    async def sleep_ms(self, ms: int) -> None: ...
