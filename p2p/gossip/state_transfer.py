"""State transfer: a lagging or new peer pulls missing blocks in batches from several peers.

The planner walks forward from the next block we need and asks for ranges of at most
``state_batch_blocks`` blocks, keeping up to ``state_parallel_requests`` requests outstanding,
each to a randomly chosen peer (seeded RNG) that announced a height covering the range; peers
already serving a request are avoided while others are available, so a catch-up draws on several
peers at once. A request unanswered after ``state_request_timeout_ms`` is forgotten and its range
asked again, of another peer when possible.

A batch is verified as it arrives (:func:`p2p.verify.verify_chain_segment`: internal hash links,
Merkle roots, orderer signatures) and parked until it is contiguous with our tip, where the link of
its first block is checked. Whoever sent an invalid block is reported for a penalty. Serving
requests reads stored canonical bytes and never re-encodes them.

Sans-I/O: no clock (``now_ms`` passed in), no sockets; randomness from the injected RNG.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from p2p.gossip.common import STATE_BATCH_BYTES_MAX, BlockStore, GossipConfig, Output, Send
from p2p.messages import BlockBatch, BlockRequest
from p2p.verify import InvalidBlock, OrdererKeyResolver, VerifiedBlock, verify_chain_segment

__all__ = ["READY_BATCHES_MAX", "StateTransfer", "serve_request"]

# Verified batches parked ahead of the tip. Each is at most one batch, so this bounds the memory
# of a catch-up to READY_BATCHES_MAX x STATE_BATCH_BYTES_MAX even if requests finish out of order.
READY_BATCHES_MAX: Final = 8


@dataclass(slots=True)
class _Request:
    peer: str
    start: int
    count: int
    sent_ms: int


@dataclass(slots=True)
class _Ready:
    peer: str
    blocks: list[VerifiedBlock]

    @property
    def start(self) -> int:
        return self.blocks[0].number

    @property
    def end(self) -> int:
        return self.blocks[-1].number + 1


def serve_request(store: BlockStore, req: BlockRequest, max_blocks: int) -> BlockBatch:
    """Answer a block request from the store: consecutive stored blocks within the batch limits."""
    count = min(req.count, max_blocks)
    end = min(req.start + count, store.height)
    blocks: list[bytes] = []
    size = 0
    for n in range(req.start, end):
        data = store.get_block_bytes(n)
        if blocks and size + len(data) > STATE_BATCH_BYTES_MAX:
            break
        blocks.append(data)
        size += len(data)
    return BlockBatch(req.channel, req.request_id, req.start, tuple(blocks))


class StateTransfer:
    """Outstanding block requests and verified-but-not-yet-contiguous batches of one channel."""

    def __init__(self, channel: str, config: GossipConfig, rng: random.Random, resolve_key: OrdererKeyResolver):
        self.channel = channel
        self._cfg = config
        self._rng = rng
        self._resolve = resolve_key
        self.outstanding: dict[int, _Request] = {}
        self.ready: dict[int, _Ready] = {}
        self._next_rid = 1

    def forget_peer(self, peer: str) -> None:
        for rid in [r for r, q in self.outstanding.items() if q.peer == peer]:
            del self.outstanding[rid]

    def _covered_until(self, cursor: int) -> int | None:
        """If ``cursor`` lies in a requested or parked range, that range's end."""
        for q in self.outstanding.values():
            if q.start <= cursor < q.start + q.count:
                return q.start + q.count
        for r in self.ready.values():
            if r.start <= cursor < r.end:
                return r.end
        return None

    def plan(self, now_ms: int, next_needed: int, heights: dict[str, int]) -> list[Output]:
        """Requests to send now for the blocks above ``next_needed`` that peers announced."""
        for rid, q in list(self.outstanding.items()):
            if now_ms - q.sent_ms > self._cfg.state_request_timeout_ms:
                del self.outstanding[rid]
        out: list[Output] = []
        cursor = next_needed
        target = max(heights.values(), default=0)
        # Parked batches end here; below it, an uncovered range is a gap that blocks delivery (its
        # request timed out or came back short) and is always requested, even with the park full.
        parked_end = max((r.end for r in self.ready.values()), default=next_needed)
        while cursor < target and len(self.outstanding) < self._cfg.state_parallel_requests:
            end = self._covered_until(cursor)
            if end is not None:
                cursor = end
                continue
            if cursor >= parked_end and len(self.ready) >= READY_BATCHES_MAX:
                break
            have = sorted(p for p, h in heights.items() if h > cursor)
            busy = {q.peer for q in self.outstanding.values()}
            idle = [p for p in have if p not in busy]
            peer = self._rng.choice(idle or have)
            count = min(self._cfg.state_batch_blocks, heights[peer] - cursor)
            if cursor < parked_end:  # fill the gap only, up to the next parked batch
                count = min(
                    count,
                    min((r.start for r in self.ready.values() if r.start > cursor), default=cursor + count) - cursor,
                )
            rid = self._next_rid
            self._next_rid += 1
            self.outstanding[rid] = _Request(peer, cursor, count, now_ms)
            out.append(Send(peer, BlockRequest(self.channel, rid, cursor, count)))
            cursor += count
        return out

    def on_batch(self, peer: str, msg: BlockBatch, next_needed: int) -> list[VerifiedBlock] | None:
        """Accept a batch answering one of our requests; None if it was not expected.

        Raises :class:`InvalidBlock` (the peer is to be penalised) for a block that fails
        verification or a batch that does not answer the request.
        """
        q = self.outstanding.get(msg.request_id)
        if q is None or q.peer != peer or msg.channel != self.channel:
            return None  # late answer to a request that timed out, or not ours: not an offence
        del self.outstanding[msg.request_id]
        if msg.start != q.start or len(msg.blocks) > q.count:
            raise InvalidBlock(q.start, f"batch does not answer the request for {q.count} blocks from {q.start}")
        if not msg.blocks:
            return []
        blocks = verify_chain_segment(
            msg.blocks, channel=self.channel, start=msg.start, previous_hash=None, resolve_key=self._resolve
        )
        if blocks[-1].number >= next_needed:
            self.ready[msg.start] = _Ready(peer, blocks)
        return blocks

    def take_ready(self, next_needed: int) -> tuple[str, list[VerifiedBlock]] | None:
        """The parked batch that continues from ``next_needed`` (trimmed), if any."""
        for start in sorted(self.ready):
            r = self.ready[start]
            if r.end <= next_needed:
                del self.ready[start]  # fully overtaken by pushes or another batch
                continue
            if r.start <= next_needed:
                del self.ready[start]
                return r.peer, [b for b in r.blocks if b.number >= next_needed]
            break
        return None

    def drop_from(self, peer: str) -> None:
        """Forget everything a penalised peer sent or was asked."""
        self.forget_peer(peer)
        for start in [s for s, r in self.ready.items() if r.peer == peer]:
            del self.ready[start]
