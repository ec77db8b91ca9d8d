"""Gossip's view of a channel: the commit loop adapted to the gossip core's ``BlockStore``.

Gossip asks for what this node has — the ledger plus the verified blocks queued or being
written, without a gap — so that state transfer does not fetch again blocks already on their way
to the ledger; blocks gossip delivers are queued for the commit loop, never written here.

This module holds no state of its own and never writes the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from p2p.verify import VerifiedBlock

__all__ = ["BlockQueue", "GossipStore"]


class BlockQueue(Protocol):
    """What gossip needs of a channel's commit loop (:class:`~secprivnode.pipeline.commit_loop.CommitLoop`)."""

    def queued_height(self) -> int: ...

    def queued_tip_hash(self) -> bytes | None: ...

    def queued_block_bytes(self, number: int) -> bytes: ...

    def offer_block(self, number: int, data: bytes, block_hash: bytes, *, publish: bool) -> None: ...


class GossipStore:
    """Adapts a channel's commit loop to the gossip core's ``BlockStore`` protocol."""

    def __init__(self, blocks: BlockQueue) -> None:
        self._blocks = blocks

    @property
    def height(self) -> int:
        return self._blocks.queued_height()

    @property
    def tip_hash(self) -> bytes | None:
        return self._blocks.queued_tip_hash()

    def get_block_bytes(self, number: int) -> bytes:
        return self._blocks.queued_block_bytes(number)

    def deliver(self, blocks: Sequence[VerifiedBlock]) -> None:
        for vb in blocks:
            self._blocks.offer_block(vb.header.number, vb.data, vb.hash, publish=False)
