"""Value types of the ordering service: its configuration, the ledger tip it resumes from, the
blocks it delivers, its metrics and status.

This module holds no logic beyond validation and must never perform I/O (except reading the
ledger passed to :meth:`LedgerTip.from_ledger`).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from consensus.raft.types import Role
from storage.model import GENESIS_PREVIOUS_HASH, BlockHeader

__all__ = ["LedgerTip", "OrderedBlock", "OrdererConfig", "OrdererMetrics", "OrdererStatus"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class OrdererConfig:
    # Pending pool bounds: submissions get PoolFull beyond them. 100k × ~1 KiB txs is ~100 MiB at
    # worst, and at tens of thousands of tx/s it is a few seconds of work queued: more would only
    # add latency, not throughput.
    pool_max_txs: int = 100_000
    pool_max_bytes: int = 128 * MiB
    # Ids of recently applied transactions kept for duplicate detection: several seconds of peak
    # throughput; older replays are caught by the node's ledger check and by committers.
    recent_ids_max: int = 200_000
    # Applied block bytes kept so that a node becoming leader can learn recent ids: covers
    # recent_ids_max ids of small transactions while bounding memory.
    recent_block_bytes_max: int = 48 * MiB
    # Proposed but not yet applied blocks: enough to keep Raft appends pipelined over a LAN
    # round trip plus an fsync, small enough that a deposed leader drops little.
    inflight_blocks_max: int = 16
    # Blocks applied but not yet taken by the local committer: beyond it Raft apply waits.
    commit_queue_max: int = 64
    # Transactions checked per creator-verification batch (one executor call).
    verify_batch_max: int = 4096
    # Concurrent forwards from a follower to the leader.
    forward_concurrency_max: int = 256
    # How often the leader loop re-reads the Raft status when nothing else wakes it.
    status_poll_ms: int = 20
    # Applied blocks between two Raft snapshot requests: the log is compacted behind them, and
    # a follower further behind than the kept entries gets a snapshot and state transfer.
    snapshot_every_blocks: int = 1000
    # Worker processes for the structural check of large submissions (0: on the event loop).
    # The check is pure Python per transaction; on a leader whose event loop is the bottleneck,
    # one worker moves it to another core. Submissions smaller than inspect_parallel_min stay
    # inline: below it the inter-process round trip costs more than the check.
    inspect_workers: int = 0
    inspect_parallel_min: int = 256
    verify_creator: bool = True
    forward: bool = True

    def __post_init__(self) -> None:
        for name in (
            "pool_max_txs",
            "pool_max_bytes",
            "inflight_blocks_max",
            "commit_queue_max",
            "verify_batch_max",
            "forward_concurrency_max",
            "status_poll_ms",
            "snapshot_every_blocks",
            "inspect_parallel_min",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.inspect_workers < 0:
            raise ValueError("inspect_workers must not be negative")


@dataclass(frozen=True, slots=True)
class LedgerTip:
    """Where the local ledger ends: the service continues the chain from here after a restart."""

    height: int  # number of committed blocks = number of the next block
    tip_hash: bytes  # hash of the last block (GENESIS_PREVIOUS_HASH when empty)
    raft_index: int  # Raft index of the entry that carried the last block (0: none)
    timestamp_ms: int  # the last block's timestamp (0 when empty)

    @classmethod
    def from_ledger(cls, ledger: Any) -> LedgerTip:
        """From a :class:`storage.ledger.ChannelLedger` (``height``, ``tip_hash``, ``get_header``)."""
        height = ledger.height
        if height == 0:
            return cls(0, GENESIS_PREVIOUS_HASH, 0, 0)
        header: BlockHeader = ledger.get_header(height - 1)
        return cls(height, header.hash(), header.index, header.timestamp_ms)


@dataclass(frozen=True, slots=True)
class OrderedBlock:
    """A block committed by Raft and appended to the chain, as delivered to the committer."""

    number: int
    hash: bytes
    header: BlockHeader
    data: bytes  # canonical Block bytes (decode with Block.decode)
    tx_count: int


@dataclass(slots=True)
class OrdererMetrics:
    blocks_cut: int = 0  # blocks this node proposed as leader
    txs_cut: int = 0
    blocks_delivered: int = 0  # blocks applied and handed to the committer
    txs_ordered: int = 0
    blocks_skipped: int = 0  # committed entries that did not extend the chain
    txs_dropped: int = 0  # reported through on_dropped
    txs_forwarded: int = 0
    rejects: collections.Counter[str] = field(default_factory=collections.Counter)


@dataclass(frozen=True, slots=True)
class OrdererStatus:
    node_id: str
    role: Role
    leader: str | None
    term: int
    next_number: int  # number of the next block to be applied
    tip_hash: bytes
    applied_index: int
    pool_txs: int
    pool_bytes: int
    inflight_blocks: int
    delivery_queue: int
