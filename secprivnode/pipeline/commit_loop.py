"""A channel's commit loop: verified blocks in, committed blocks out, strictly in order.

Blocks reach the loop from two sources, both verified before they get here: the local ordering
service (blocks Raft committed) and gossip (blocks whose hash links, Merkle roots and orderer
signatures the p2p layer checked). The loop commits them strictly in order, each exactly once (a
block below the ledger height is ignored, wherever it came from), then hands the result to the
channel's waiters and subscribers and to the ``on_commit`` hook (gossip publication, a changed
channel configuration). A block is validated and its batch staged on the event loop; the
synchronous LevelDB write runs on a writer thread (LevelDB releases the GIL while it syncs), so
Raft, gossip and RPC keep running through the fsync, and the next block's hashing and Merkle
check run meanwhile.

When the ledger itself fails — stored data fails a check while a block is validated against it,
or a write fails — the loop halts for good (:attr:`CommitLoop.halted`): nothing is written past
that block, awaited transactions fail with :class:`ChannelHalted`, and ``on_halt`` tells the
channel to stop ordering.

This module never reads blocks' bytes from the network itself and never commits a block out of
order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from secprivnode.api import ServiceError
from secprivnode.clock import NodeClock
from secprivnode.metrics import NodeMetrics
from secprivnode.pipeline.committer import CommitResult, Committer
from secprivnode.pipeline.errors import AlreadyCommitted, BlockRejected
from secprivnode.pipeline.events import CommitEvents
from secprivnode.pipeline.tasks import cancel_and_wait
from storage.errors import ChainError, StorageError
from storage.ledger import ChannelLedger, CheckedBlock
from storage.model import Block
from storage.writer import SyncWriter

__all__ = ["PENDING_BLOCKS_MAX", "ChannelHalted", "CommitLoop"]

log = logging.getLogger(__name__)

# Verified blocks waiting for their turn to commit. Gossip asks for blocks just above what it
# believes we have (ledger height plus what is queued), in batches of at most 64 blocks from at most
# three peers, so a few hundred is the most that can legitimately wait.
PENDING_BLOCKS_MAX = 1024


class ChannelHalted(ServiceError):
    """The channel stopped committing (corrupt stored data or a failed ledger write)."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(
            f"channel {channel} has stopped committing ({reason}); the node needs repair",
            {"reason": "channel_halted", "channel": channel},
        )


class CommitLoop:
    """The commit side of one channel; see the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        ledger: ChannelLedger,
        committer: Committer,
        events: CommitEvents,
        metrics: NodeMetrics,
        clock: NodeClock,
        on_commit: Callable[[CommitResult, bytes, bool], None],
        on_halt: Callable[[], None],
    ) -> None:
        self.name = name
        self.ledger = ledger
        self.committer = committer
        self._events = events
        self._metrics = metrics
        self._clock = clock
        self._on_commit = on_commit  # (result, block bytes, publish) after each commit
        self._on_halt = on_halt
        self._pending: dict[int, tuple[bytes, bytes, bool]] = {}  # number -> (data, hash, publish)
        self._writing: tuple[int, bytes, bytes] | None = None  # (number, data, hash) being written
        self._prechecked: tuple[int, CheckedBlock] | None = None  # the next block, checked meanwhile
        # One thread, so batches reach LevelDB in commit order; closed by stop() before the
        # database can close under a write.
        self._writer = SyncWriter(f"{name}-ledger-writer")
        self._pending_wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Why the commit loop stopped for good (stored data failed a check, or a ledger write
        # failed); None while the channel commits. Once set, nothing more is written.
        self.halted: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._commit_loop(), name=f"{self.name}-commit")

    async def stop(self) -> None:
        """Stop the loop; the block on the writer thread finishes first."""
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        await asyncio.get_running_loop().run_in_executor(None, self._writer.close)

    def require_healthy(self) -> None:
        """Raise :class:`ChannelHalted` if the commit loop has halted."""
        if self.halted is not None:
            raise ChannelHalted(self.name, self.halted)

    # ------------------------------------------------------------------ blocks in
    def offer_block(self, number: int, data: bytes, block_hash: bytes, *, publish: bool) -> None:
        """Queue a verified block for commit (ignored if already committed or queued, or halted)."""
        if self.halted is not None or number < self._committed_or_writing() or number in self._pending:
            return
        if len(self._pending) >= PENDING_BLOCKS_MAX:
            log.warning("channel %s: commit queue full, block %d left for anti-entropy", self.name, number)
            return
        self._pending[number] = (data, block_hash, publish)
        self._pending_wake.set()
        self._metrics.queue_depth.labels(queue=f"{self.name}/commit").set(len(self._pending))

    def _committed_or_writing(self) -> int:
        """The ledger height, counting the block on the writer thread as committed."""
        w = self._writing
        return w[0] + 1 if w is not None else self.ledger.height

    def queued_height(self) -> int:
        """Ledger height plus the queued blocks that follow it without a gap."""
        h = self._committed_or_writing()
        while h in self._pending:
            h += 1
        return h

    def queued_tip_hash(self) -> bytes | None:
        """The hash of block ``queued_height() - 1`` (None before genesis)."""
        h = self.queued_height()
        w = self._writing
        if w is not None and h == w[0] + 1:
            return w[2]
        if h > self._committed_or_writing():
            return self._pending[h - 1][1]
        return self.ledger.tip_hash

    def queued_block_bytes(self, number: int) -> bytes:
        """Block ``number``, committed, being written or queued; KeyError if none of those."""
        if number < self.ledger.height:
            return self.ledger.get_block_bytes(number)
        w = self._writing
        if w is not None and w[0] == number:
            return w[1]
        item = self._pending.get(number)
        if item is None:
            raise KeyError(number)
        return item[0]

    # ------------------------------------------------------------------ the loop
    async def _commit_loop(self) -> None:
        while self.halted is None:
            await self._pending_wake.wait()
            self._pending_wake.clear()
            for n in [n for n in self._pending if n < self.ledger.height]:
                del self._pending[n]
            while (item := self._pending.pop(self.ledger.height, None)) is not None:
                data, block_hash, publish = item
                await self._commit_one(data, block_hash, publish)
                if self.halted is not None:
                    return
                await asyncio.sleep(0)  # let RPC and Raft breathe between blocks
            self._metrics.queue_depth.labels(queue=f"{self.name}/commit").set(len(self._pending))

    async def _commit_one(self, data: bytes, block_hash: bytes, publish: bool) -> None:
        t0 = self._clock.now()
        number = self.ledger.height
        try:
            pre, self._prechecked = self._prechecked, None
            if pre is not None and pre[0] == number and pre[1].data == data:
                checked: CheckedBlock | None = pre[1]
                block = pre[1].block
            else:
                checked, block = None, Block.decode(data)
            prepared = self.committer.prepare(block, block_bytes=data, checked=checked)
        except AlreadyCommitted:
            return
        except (BlockRejected, ChainError, ValueError) as exc:
            # The block's fault (it does not extend the chain, or does not decode): refused,
            # and the next copy of block ``number`` from gossip or ordering may still commit.
            log.error("channel %s: block refused: %s", self.name, exc)
            return
        except Exception as exc:  # stored data failed a check (StorageError), or the ledger broke
            # Validation read state that is not what the chain says: nothing may be written on
            # top of it.
            self._halt(number, exc)
            return
        self._writing = (number, data, block_hash)
        try:
            write = asyncio.wrap_future(self._writer.submit(prepared.staged.write))
            self._precheck(number + 1)
            await asyncio.shield(write)  # a cancelled loop still lets the write finish (stop joins it)
        except Exception as exc:  # the ledger refuses further writes after a failed one
            self._halt(number, exc)
            return
        finally:
            self._writing = None
        result = self.committer.finish(prepared)
        m = self._metrics
        m.commit_latency.labels(channel=self.name).observe(self._clock.now() - t0)
        m.blocks_committed.labels(channel=self.name).inc()
        m.block_height.labels(channel=self.name).set(result.number + 1)
        for code in result.codes:
            m.transactions.labels(channel=self.name, code=code.name).inc()
        self._events.notify(result)
        self._on_commit(result, data, publish)

    def _halt(self, number: int, exc: BaseException) -> None:
        """Stop committing for good: stored data failed a check or a ledger write failed.

        Committing past either would build on state that is not what the chain says (TigerBeetle's
        rule: on corruption, stop instead of handling it). The channel refuses submissions, fails
        the transactions awaited, stops ordering and reports itself failing in the health checks;
        an operator repairs the ledger (``secprivnode ledger verify``) and restarts the node."""
        self.halted = f"commit halted at block {number}: {type(exc).__name__}: {exc}"
        log.critical("channel %s: %s; the node needs repair (secprivnode ledger verify)", self.name, self.halted)
        self._pending.clear()
        self._prechecked = None
        self._metrics.queue_depth.labels(queue=f"{self.name}/commit").set(0)
        self._events.fail_waiters(ChannelHalted(self.name, self.halted))
        self._on_halt()

    def _precheck(self, number: int) -> None:
        """Decode and check block ``number`` if it is queued, while its predecessor syncs."""
        item = self._pending.get(number)
        if item is None:
            return
        try:
            block = Block.decode(item[0])
            self._prechecked = (number, self.ledger.check_block(block, item[0]))
        except (StorageError, ValueError):
            pass  # the commit decodes it again and reports why it is refused
