"""The leader's bounded pending pool and the duplicate-id sets of the ordering service.

A transaction id moves through three disjoint sets:

* **pending**: admitted on this leader, not yet in a proposed block. Bounded by ``max_txs`` and
  ``max_bytes``: when either is reached, submissions get :class:`PoolFull` (back-pressure to
  clients instead of unbounded memory).
* **in flight**: in a block proposed to Raft, not yet applied. Bounded by the service's limit on
  proposed-but-unapplied blocks times the block size.
* **recent**: in a block applied recently. Bounded by ``recent_max`` ids, evicted a whole block at
  a time, oldest first. Older duplicates are the node's to catch: it checks the ledger's tx-id
  index, and committers mark duplicates invalid (``ValidationCode.DUPLICATE_TXID``).

A submission whose id is in any of the three is a :class:`DuplicateTransaction`.

This module must never read the clock, never perform I/O, and never hold more than its bounds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from consensus.orderer.errors import DuplicateTransaction, OrdererError, PoolFull
from consensus.orderer.txcheck import DATA, TX_ID, TxInfo

__all__ = ["TxPool"]


class TxPool:
    """Pending / in-flight / recent transaction ids with the pending pool's bounds."""

    def __init__(self, max_txs: int, max_bytes: int, recent_max: int) -> None:
        if max_txs < 1 or max_bytes < 1 or recent_max < 0:
            raise ValueError("pool limits must be positive")
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.recent_max = recent_max
        self._pending: set[bytes] = set()
        self._pending_bytes = 0
        self._inflight: dict[int, list[bytes]] = {}  # block key (Raft index) -> its tx ids
        self._inflight_ids: set[bytes] = set()
        self._recent: set[bytes] = set()
        self._recent_blocks: deque[Sequence[bytes]] = deque()

    # ---------------------------------------------------------------------------- queries
    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def inflight_count(self) -> int:
        return len(self._inflight_ids)

    @property
    def recent_count(self) -> int:
        return len(self._recent)

    def known(self, tx_id: bytes) -> bool:
        return tx_id in self._pending or tx_id in self._inflight_ids or tx_id in self._recent

    # -------------------------------------------------------------------------- admission
    def admit(self, info: TxInfo) -> None:
        """Add to pending; raise :class:`DuplicateTransaction` or :class:`PoolFull`."""
        tx_id = info[TX_ID]
        if tx_id in self._pending or tx_id in self._inflight_ids or tx_id in self._recent:
            raise DuplicateTransaction(tx_id)
        size = len(info[DATA])
        if len(self._pending) >= self.max_txs or self._pending_bytes + size > self.max_bytes:
            raise PoolFull(
                f"pending pool full ({len(self._pending)}/{self.max_txs} txs, "
                f"{self._pending_bytes}/{self.max_bytes} bytes)"
            )
        self._pending.add(tx_id)
        self._pending_bytes += size

    def admit_batch(self, items: Sequence[TxInfo | OrdererError]) -> tuple[list[TxInfo], list[bytes | OrdererError]]:
        """Admit each :class:`TxInfo` in order; refusals of earlier checks pass through.

        Returns the admitted transactions and, per item, its tx id (admitted) or the refusal
        (:class:`DuplicateTransaction`, also for a repeat within ``items``; :class:`PoolFull`).
        One pass with the sets in locals: this runs for every submitted transaction.
        """
        admitted: list[TxInfo] = []
        results: list[bytes | OrdererError] = []
        pending, inflight, recent = self._pending, self._inflight_ids, self._recent
        max_txs, max_bytes = self.max_txs, self.max_bytes
        pending_bytes = self._pending_bytes
        for info in items:
            if type(info) is not tuple:
                assert isinstance(info, OrdererError), f"not a TxInfo or a refusal: {info!r}"
                results.append(info)
                continue
            tx_id = info[0]  # TX_ID, DATA: literal positions in the per-transaction loop
            size = len(info[2])
            if tx_id in pending or tx_id in inflight or tx_id in recent:
                results.append(DuplicateTransaction(tx_id))
            elif len(pending) >= max_txs or pending_bytes + size > max_bytes:
                results.append(
                    PoolFull(f"pending pool full ({len(pending)}/{max_txs} txs, {pending_bytes}/{max_bytes} bytes)")
                )
            else:
                pending.add(tx_id)
                pending_bytes += size
                results.append(tx_id)
                admitted.append(info)
        self._pending_bytes = pending_bytes
        return admitted, results

    def admit_many(self, infos: Iterable[TxInfo]) -> list[OrdererError | None]:
        """:meth:`admit` each; per item ``None`` (admitted) or the refusal."""
        out: list[OrdererError | None] = []
        pending, inflight, recent = self._pending, self._inflight_ids, self._recent
        for info in infos:
            tx_id = info[TX_ID]
            size = len(info[DATA])
            if tx_id in pending or tx_id in inflight or tx_id in recent:
                out.append(DuplicateTransaction(tx_id))
            elif len(pending) >= self.max_txs or self._pending_bytes + size > self.max_bytes:
                out.append(PoolFull(f"pending pool full ({len(pending)}/{self.max_txs} txs)"))
            else:
                pending.add(tx_id)
                self._pending_bytes += size
                out.append(None)
        return out

    def remove_pending(self, infos: Iterable[TxInfo]) -> None:
        """Forget pending transactions (refused after admission, or flushed on losing leadership)."""
        for info in infos:
            if info[TX_ID] in self._pending:
                self._pending.discard(info[TX_ID])
                self._pending_bytes -= len(info[DATA])
        assert self._pending_bytes >= 0

    # ---------------------------------------------------------------------------- flight
    def to_inflight(self, key: int, infos: Sequence[TxInfo]) -> None:
        """Pending transactions were proposed in the block identified by ``key``."""
        assert key not in self._inflight, f"block key {key} proposed twice"
        ids_t, _, datas = zip(*infos, strict=True) if infos else ((), (), ())
        ids = list(ids_t)
        # Everything proposed was pending (the service only proposes admitted txs): set and byte
        # arithmetic in bulk rather than per transaction.
        before = len(self._pending)
        self._pending.difference_update(ids)
        assert before - len(self._pending) == len(ids), "proposed a transaction that was not pending"
        self._pending_bytes -= sum(map(len, datas))
        assert self._pending_bytes >= 0
        self._inflight[key] = ids
        self._inflight_ids.update(ids)

    def add_inflight_ids(self, key: int, ids: Sequence[bytes]) -> None:
        """Ids of a block already in the Raft log but not applied (learnt when becoming leader)."""
        if key in self._inflight:
            return
        self._inflight[key] = list(ids)
        self._inflight_ids.update(ids)

    def inflight_keys(self) -> list[int]:
        return sorted(self._inflight)

    def resolve(self, key: int, ordered: bool) -> list[bytes]:
        """The in-flight block ``key`` was applied (``ordered``) or lost; return its ids."""
        ids = self._inflight.pop(key, None)
        if ids is None:
            return []
        self._inflight_ids.difference_update(ids)
        if ordered:
            self.add_recent(ids)
        return ids

    # ---------------------------------------------------------------------------- recent
    def add_recent(self, ids: Sequence[bytes]) -> None:
        """Remember the ids of an applied block; evict whole old blocks past ``recent_max``."""
        if self.recent_max == 0 or not ids:
            return
        self._recent_blocks.append(ids)
        self._recent.update(ids)
        while len(self._recent) > self.recent_max and len(self._recent_blocks) > 1:
            self._recent.difference_update(self._recent_blocks.popleft())

    def clear_recent(self) -> None:
        self._recent.clear()
        self._recent_blocks.clear()

    def clear_flight(self) -> list[bytes]:
        """Forget every in-flight block (leadership lost); return their ids."""
        ids = list(self._inflight_ids)
        self._inflight.clear()
        self._inflight_ids.clear()
        return ids
