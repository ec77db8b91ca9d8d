"""What a channel tells its clients after each commit: transaction waiters and event subscribers.

:class:`CommitEvents` resolves the futures of clients waiting for a transaction's commit and
feeds bounded queues of subscribers (``block``, ``tx`` and ``contract`` events), both from a
:class:`~secprivnode.pipeline.committer.CommitResult`. Every buffer is bounded: waits beyond
:data:`WAITERS_MAX` are refused, and a subscriber that falls :data:`SUBSCRIBER_QUEUE_MAX` events
behind is cut off.

This module never touches the ledger's writes and never blocks the commit loop: handing results
over is synchronous and drops nothing but a too-slow subscriber.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

from secprivnode.api import Event, Overloaded
from secprivnode.pipeline.committer import CommitResult
from storage.model import ValidationCode

__all__ = ["SUBSCRIBER_QUEUE_MAX", "WAITERS_MAX", "CommitEvents", "TxLocator", "TxOutcome"]

# Transactions whose commit a client is waiting for. Beyond it, new waits are refused (Overloaded)
# rather than letting a flood of never-ordered ids pin memory.
WAITERS_MAX = 200_000
# Events buffered per subscriber; a subscriber that falls this far behind is cut off.
SUBSCRIBER_QUEUE_MAX = 1024


@dataclass(frozen=True, slots=True)
class TxOutcome:
    block_number: int
    code: ValidationCode


class TxLocator(Protocol):
    """Where a committed transaction is (``storage.ledger.ChannelLedger`` provides it)."""

    def tx_location(self, tx_id: bytes) -> tuple[int, int, ValidationCode] | None: ...


class _Subscriber:
    def __init__(self, kinds: frozenset[str], tx_id: bytes | None) -> None:
        self.kinds = kinds
        self.tx_id = tx_id
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_QUEUE_MAX)
        self.overflowed = False

    def offer(self, ev: Event) -> None:
        if ev.kind not in self.kinds or self.overflowed:
            return
        if self.tx_id is not None and ev.data.get("tx_id") != self.tx_id:
            return
        try:
            self.queue.put_nowait(ev)
        except asyncio.QueueFull:
            self.overflowed = True
            with suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # tells the reader it was cut off


class CommitEvents:
    """Waiters and subscribers of one channel; see the module docstring."""

    def __init__(self, name: str, ledger: TxLocator) -> None:
        self.name = name
        self.ledger = ledger
        self._waiters: dict[bytes, list[asyncio.Future[TxOutcome]]] = {}
        self._subscribers: set[_Subscriber] = set()

    def notify(self, result: CommitResult) -> None:
        block_ev = Event(
            "block",
            self.name,
            {
                "number": result.number,
                "hash": result.block_hash,
                "tx_count": len(result.codes),
                "valid": result.valid_count,
            },
        )
        events = [block_ev]
        for tx in result.txs:
            outcome = TxOutcome(result.number, tx.code)
            for fut in self._waiters.pop(tx.tx_id, ()):
                if not fut.done():
                    fut.set_result(outcome)
            if self._subscribers:
                events.append(Event("tx", self.name, {"tx_id": tx.tx_id, "block": result.number, "code": tx.code.name}))
                for name, payload in tx.events:
                    events.append(
                        Event(
                            "contract",
                            self.name,
                            {"tx_id": tx.tx_id, "contract": tx.contract, "name": name, "payload": payload},
                        )
                    )
        for sub in list(self._subscribers):
            for ev in events:
                sub.offer(ev)

    def fail_waiters(self, exc: Exception) -> None:
        """Fail every awaited transaction with ``exc`` (the channel stopped committing)."""
        for futs in self._waiters.values():
            for f in futs:
                if not f.done():
                    f.set_exception(exc)
        self._waiters.clear()

    def cancel_waiters(self) -> None:
        for futs in self._waiters.values():
            for f in futs:
                if not f.done():
                    f.cancel()
        self._waiters.clear()

    # ------------------------------------------------------------------ waiting and events
    def wait_for(self, tx_id: bytes) -> asyncio.Future[TxOutcome]:
        fut: asyncio.Future[TxOutcome] = asyncio.get_running_loop().create_future()
        loc = self.ledger.tx_location(tx_id)
        if loc is not None and loc[2] is ValidationCode.VALID:
            fut.set_result(TxOutcome(loc[0], loc[2]))
            return fut
        if len(self._waiters) >= WAITERS_MAX:
            raise OverflowError("too many transactions awaited")
        self._waiters.setdefault(tx_id, []).append(fut)
        return fut

    def forget_waiter(self, tx_id: bytes, fut: asyncio.Future[TxOutcome]) -> None:
        futs = self._waiters.get(tx_id)
        if futs and fut in futs:
            futs.remove(fut)
            if not futs:
                del self._waiters[tx_id]

    def is_awaited(self, tx_id: bytes) -> bool:
        return tx_id in self._waiters

    async def events(self, kinds: frozenset[str], tx_id: bytes | None) -> AsyncIterator[Event]:
        sub = _Subscriber(kinds, tx_id)
        self._subscribers.add(sub)
        try:
            while True:
                ev = await sub.queue.get()
                if ev is None:
                    raise Overloaded("subscriber fell too far behind; subscribe again")
                yield ev
        finally:
            self._subscribers.discard(sub)
