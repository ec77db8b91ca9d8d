"""Block cutting: which admitted transactions go into the next block, and when.

The rules are Hyperledger Fabric's ``BatchSize`` / ``BatchTimeout`` (Fabric docs, "Channel
configuration: Orderer batch parameters"; ``orderer/common/blockcutter``), with
:class:`storage.model.BatchConfig`:

* a transaction larger than ``absolute_max_bytes`` is refused (it could never be ordered);
* a transaction larger than ``preferred_max_bytes`` goes alone into its own block (any pending
  transactions are cut into the block before it, so order is kept);
* a transaction that would take the pending bytes past ``preferred_max_bytes`` first cuts the
  pending transactions, then starts the next batch;
* the pending batch is cut when it holds ``max_tx_count`` transactions, or when ``timeout_ms``
  has passed since its first transaction arrived, whichever comes first.

:class:`BlockCutter` is a pure object: time is passed in as ``now_ms``; it never reads a clock,
never sleeps and never does I/O. The service asks :meth:`BlockCutter.deadline_ms` when to come
back for a timeout cut.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from consensus.orderer.errors import InvalidTransaction
from crypto.encoding import MAX_DECODE_BYTES
from storage.model import BatchConfig

__all__ = ["BLOCK_OVERHEAD_MAX", "BlockCutter", "Sized", "check_batch_config"]


class Sized(Protocol):
    """What the cutter batches by default: it only needs the byte size (``len(item.data)``)."""

    @property
    def data(self) -> bytes: ...


T = TypeVar("T")

# Bytes a block adds around its transactions: header (~150 B), array headers, the orderer's
# certificate (under 16 KiB, the MSP's limit) and signature (~72 B). Generous on purpose.
BLOCK_OVERHEAD_MAX = 64 * 1024


def check_batch_config(cfg: BatchConfig) -> None:
    """Raise ``ValueError`` for a configuration no cutter could honour."""
    if cfg.max_tx_count < 1 or cfg.timeout_ms < 1:
        raise ValueError("max_tx_count and timeout_ms must be positive")
    if not 0 < cfg.preferred_max_bytes <= cfg.absolute_max_bytes:
        raise ValueError("need 0 < preferred_max_bytes <= absolute_max_bytes")
    if cfg.absolute_max_bytes > MAX_DECODE_BYTES - BLOCK_OVERHEAD_MAX:
        # A block is at most max(preferred, absolute) bytes of transactions plus its header,
        # certificate and signature; committers must be able to decode it.
        raise ValueError(f"absolute_max_bytes must leave room for a block within {MAX_DECODE_BYTES} bytes")


class BlockCutter(Generic[T]):
    """Fabric's block cutter over a pending batch; time is an argument, never read."""

    def __init__(self, config: BatchConfig, data_of: Callable[[T], bytes] = operator.attrgetter("data")) -> None:
        """``data_of(item)`` is the item's bytes (their length is what counts against the byte
        limits); an ``operator`` getter keeps the per-item cost in C."""
        check_batch_config(config)
        self.config = config
        self._data_of = data_of
        self._pending: list[T] = []
        self._pending_bytes = 0
        self._first_ms: int | None = None  # arrival time of the pending batch's first transaction

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def deadline_ms(self) -> int | None:
        """When the pending batch must be cut by timeout; None if nothing is pending."""
        if self._first_ms is None:
            return None
        return self._first_ms + self.config.timeout_ms

    def add(self, items: Iterable[T], now_ms: int) -> list[list[T]]:
        """Add transactions in arrival order; return the batches that are complete now.

        Raises :class:`InvalidTransaction` (``too_large``) for an item over
        ``absolute_max_bytes``; the items before it have been added, the rest not.
        """
        cfg = self.config
        preferred = cfg.preferred_max_bytes
        absolute = cfg.absolute_max_bytes
        max_count = cfg.max_tx_count
        out: list[list[T]] = []
        data_of = self._data_of
        for item in items:
            size = len(data_of(item))
            if size > absolute:
                raise InvalidTransaction("too_large", f"{size} bytes exceeds absolute_max_bytes {absolute}")
            if size > preferred:
                if self._pending:
                    out.append(self.cut())
                out.append([item])
                continue
            if self._pending_bytes + size > preferred:
                out.append(self.cut())
            if not self._pending:
                self._first_ms = now_ms
            self._pending.append(item)
            self._pending_bytes += size
            if len(self._pending) >= max_count:
                out.append(self.cut())
        return out

    def cut_if_due(self, now_ms: int) -> list[T] | None:
        """The pending batch if its timeout has expired at ``now_ms``, else None."""
        deadline = self.deadline_ms()
        if deadline is None or now_ms < deadline:
            return None
        return self.cut()

    def cut(self) -> list[T]:
        """Take the pending batch (possibly empty) and start a new one."""
        batch = self._pending
        self._pending = []
        self._pending_bytes = 0
        self._first_ms = None
        return batch
