"""The ordering service's view of its surroundings: the clock and the Raft driver.

:class:`RaftPort` is the small protocol the service needs of Raft (propose, membership changes,
status, reading the log tail, snapshot requests); :class:`DriverPort` implements it over
:class:`consensus.raft.driver.RaftDriver`. Tests implement it over a scripted log.

This module holds no ordering logic and never reads the clock (:class:`SystemClock` is
:mod:`consensus.clock`'s).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from consensus.clock import SystemClock
from consensus.raft.driver import RaftDriver
from consensus.raft.types import ConfChange, Entry, Role

__all__ = ["ENTRIES_READ_BYTES", "Clock", "DriverPort", "RaftPort", "RaftStatusLike", "SystemClock"]

MiB = 1024 * 1024


class Clock(Protocol):
    """Wall time in unix milliseconds (block timestamps, batch timeouts) and sleeping on it."""

    def now_ms(self) -> int: ...

    async def sleep_ms(self, ms: int) -> None: ...


class RaftStatusLike(Protocol):
    @property
    def leader(self) -> str | None: ...
    @property
    def term(self) -> int: ...
    @property
    def role(self) -> Role: ...
    @property
    def last_index(self) -> int: ...


class RaftPort(Protocol):
    """What the service needs of the Raft driver."""

    def status(self) -> RaftStatusLike: ...

    async def propose(self, data: bytes) -> int:
        """Append ``data`` as one entry; its log index. Raises NotLeader / ProposalDropped."""
        ...

    async def propose_conf_change(self, cc: ConfChange) -> int:
        """Append a membership change; its log index. Raises NotLeader / ConfChangeRefused /
        ProposalDropped."""
        ...

    def entries(self, lo: int, hi: int) -> Sequence[Entry]:
        """Log entries ``[lo, hi)`` (committed or not), for a new leader to read its tail."""
        ...

    def request_snapshot(self, index: int, data: bytes) -> None:
        """The application state at applied ``index``; Raft may compact the log up to it."""
        ...


# Bytes of log entries read per storage call when a new leader reads its log tail.
ENTRIES_READ_BYTES = 4 * MiB


class DriverPort:
    """:class:`RaftPort` over a :class:`consensus.raft.driver.RaftDriver`.

    Wiring (the driver's callbacks close over the service, created just after)::

        driver = RaftDriver(node, storage, send, apply=lambda es: svc.apply(es), clock=clock,
                            tick_interval_s=0.05, restore=lambda snap: svc.restore(snap))
        svc = OrderingService(..., raft=DriverPort(driver))
    """

    def __init__(self, driver: RaftDriver) -> None:
        self._driver = driver

    def status(self) -> RaftStatusLike:
        return self._driver.status()

    async def propose(self, data: bytes) -> int:
        return await self._driver.propose(data)

    async def propose_conf_change(self, cc: ConfChange) -> int:
        return await self._driver.propose_conf_change(cc)

    def entries(self, lo: int, hi: int) -> Sequence[Entry]:
        storage = self._driver.storage
        lo = max(lo, storage.first_index())
        hi = min(hi, storage.last_index() + 1)
        out: list[Entry] = []
        while lo < hi:
            ents = storage.entries(lo, hi, ENTRIES_READ_BYTES)
            out.extend(ents)
            lo = ents[-1].index + 1
        return out

    def request_snapshot(self, index: int, data: bytes) -> None:
        self._driver.request_snapshot(index, data)
