"""The ordering service of one orderer node of one channel: admission, cutting, Raft, delivery.

API (what the node calls)::

    svc = OrderingService(
        channel="city", node_id="orderer0",
        signer=BlockSigner(cert_der, private_key), batch=BatchConfig(...),
        msp_provider=lambda: current_msp, clock=clock, raft=raft_port,
        forward=async_forward, ledger_tip=lambda: LedgerTip.from_ledger(ledger),
        config=OrdererConfig(...), on_dropped=cb, on_state_transfer=cb, verifier=batch_verifier,
    )
    await svc.start()
    tx_id = await svc.submit(tx_bytes)                  # raises OrdererError / NotLeader
    results = await svc.submit_many([tx_bytes, ...])    # per item: tx id or the OrdererError
    async for block in svc.committed(): ...             # OrderedBlock, in order, exactly once
    svc.status(); svc.metrics                           # OrdererStatus, OrdererMetrics
    await svc.stop()

Wiring to Raft (the node does it): the driver's committed entries go to ``await svc.apply(entries)``
(it blocks while the delivery queue is full: back-pressure on Raft apply), its snapshots take
``svc.snapshot_data()`` and an installed snapshot goes to ``svc.restore_snapshot(data, index)``;
``raft_port`` (:class:`RaftPort`) is how the service proposes and reads the log tail.

How the chain is kept (each Raft entry carries exactly one block):

* The leader bases block N+1 on the last block in its own Raft log, committed or not: it tracks
  the number, hash and timestamp of its last proposed block, and stamps the block's header with
  its term and the log index the entry will take. On becoming leader it derives that tip from the
  last applied block plus the unapplied tail of its log, replayed with the apply rule below.
* Apply rule, identical on every node: a block is appended to the chain iff its number is the next
  one, its previous hash is the last applied block's hash, and its header's (term, index) are those
  of the entry that carries it. Anything else is skipped. All nodes apply the same entries
  (Raft's State Machine Safety, §5.4.3), so all skip the same ones; the transactions of a skipped
  block are reported through ``on_dropped`` so clients can resubmit them.
* Delivery is through a bounded queue; after a restart the service starts from the ledger tip
  (``ledger_tip``), so entries up to the Raft index of the ledger's last block are not delivered
  again.
* Block time is ``max(now_ms, previous block's time)``: monotonic even if the leader's clock steps
  back or leadership moves to a node with a slower clock.

A follower forwards submissions to the leader through ``forward(leader_id, tx_bytes)``, or with
``OrdererConfig.forward=False`` raises :class:`~consensus.raft.types.NotLeader` with the hint.

This module must never read the clock except through the injected ``clock``, never let the
delivery queue or pools grow past their limits, and never deliver a block that does not extend the
chain it delivered before.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import operator
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from consensus.orderer.blocks import BlockSigner, assemble_block, block_tx_ids, read_header
from consensus.orderer.cutter import BlockCutter, check_batch_config
from consensus.orderer.errors import InvalidTransaction, OrdererError, OrdererStopped
from consensus.orderer.model import LedgerTip, OrderedBlock, OrdererConfig, OrdererMetrics, OrdererStatus
from consensus.orderer.pool import TxPool
from consensus.orderer.port import Clock, DriverPort, RaftPort, RaftStatusLike, SystemClock
from consensus.orderer.txcheck import DATA, TX_ID, CreatorChecker, MSPLike, TxInfo, inspect_many, inspect_tx
from consensus.raft.types import ConfChange, Entry, EntryKind, NotLeader, ProposalDropped, RaftError, Role, Snapshot
from crypto.batch import BatchVerifier
from crypto.encoding import EncodingError, decode, encode
from storage.model import GENESIS_PREVIOUS_HASH, BatchConfig

__all__ = [
    "Clock",
    "DriverPort",
    "LedgerTip",
    "OrderedBlock",
    "OrdererConfig",
    "OrdererMetrics",
    "OrdererStatus",
    "OrderingService",
    "RaftPort",
    "SystemClock",
]

log = logging.getLogger(__name__)

MiB = 1024 * 1024


Forward = Callable[[str, bytes], Awaitable[bytes]]
DroppedHook = Callable[[Sequence[bytes], str], None]
StateTransferHook = Callable[[int, bytes], None]


class OrderingService:
    """One orderer node's ordering service for one channel (see the module docstring)."""

    def __init__(
        self,
        *,
        channel: str,
        node_id: str,
        signer: BlockSigner,
        batch: BatchConfig,
        msp_provider: Callable[[], MSPLike],
        clock: Clock,
        raft: RaftPort,
        forward: Forward,
        ledger_tip: Callable[[], LedgerTip],
        config: OrdererConfig | None = None,
        on_dropped: DroppedHook | None = None,
        on_state_transfer: StateTransferHook | None = None,
        verifier: BatchVerifier | None = None,
    ) -> None:
        check_batch_config(batch)
        self.channel = channel
        self.node_id = node_id
        self.config = cfg = config or OrdererConfig()
        self.metrics = OrdererMetrics()
        self._signer = signer
        self._batch = batch
        self._clock = clock
        self._raft = raft
        self._forward = forward
        self._ledger_tip = ledger_tip
        self._on_dropped = on_dropped
        self._on_state_transfer = on_state_transfer
        self._own_verifier = verifier is None and cfg.verify_creator
        self._verifier = verifier if verifier is not None else (BatchVerifier() if cfg.verify_creator else None)
        self._checker = CreatorChecker(msp_provider, self._verifier) if self._verifier is not None else None
        self._pool = TxPool(cfg.pool_max_txs, cfg.pool_max_bytes, cfg.recent_ids_max)
        self._cutter: BlockCutter[TxInfo] = BlockCutter(batch, data_of=operator.itemgetter(DATA))
        self._queue: asyncio.Queue[OrderedBlock] = asyncio.Queue(maxsize=cfg.commit_queue_max)
        self._forward_sem = asyncio.Semaphore(cfg.forward_concurrency_max)
        # Chain as applied (every node).
        self._next_number = 0
        self._prev_hash = GENESIS_PREVIOUS_HASH
        self._tip_ts = 0
        self._applied_index = 0
        self._recent_blocks: collections.deque[bytes] = collections.deque()
        self._recent_bytes = 0
        # Leader state: valid while _lead_term is not None.
        self._lead_term: int | None = None
        self._tip_number = -1
        self._tip_hash = GENESIS_PREVIOUS_HASH
        self._lead_ts = 0
        self._next_index = 0
        self._inflight: dict[int, bytes] = {}  # Raft index -> hash of the block we expect there
        self._resync_pending = False
        self._incoming: list[TxInfo] = []  # admitted (and verified) txs not yet given to the cutter
        self._ready: collections.deque[list[TxInfo]] = collections.deque()  # cut, not yet proposed
        self._verify_queue: collections.deque[tuple[list[TxInfo], asyncio.Future[list[OrdererError | None]]]] = (
            collections.deque()
        )
        self._proposals: set[asyncio.Task[None]] = set()
        self._conf_requests: collections.deque[tuple[ConfChange, asyncio.Future[int]]] = collections.deque()
        self._blocks_since_snapshot = 0
        self._wake = asyncio.Event()
        self._verify_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._inspect_pool: ProcessPoolExecutor | None = None

    # ------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the ledger tip and start the leader and verification loops."""
        assert not self._running, "start() called twice"
        tip = self._ledger_tip()
        self._next_number = tip.height
        self._prev_hash = tip.tip_hash
        self._tip_ts = tip.timestamp_ms
        self._applied_index = max(self._applied_index, tip.raft_index)
        self._running = True
        if self.config.inspect_workers > 0:
            # forkserver: workers start from a clean process, not a fork of a node holding threads.
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            self._inspect_pool = ProcessPoolExecutor(max_workers=self.config.inspect_workers, mp_context=ctx)
            # Start the workers (and their imports) now, not on the first large submission.
            for _ in range(self.config.inspect_workers):
                self._inspect_pool.submit(inspect_many, [], self.channel, 0)
        self._tasks.append(asyncio.create_task(self._leader_loop(), name=f"orderer-{self.node_id}-leader"))
        if self._checker is not None:
            self._tasks.append(asyncio.create_task(self._verify_loop(), name=f"orderer-{self.node_id}-verify"))
        for t in self._tasks:
            t.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """A loop that ends on its own is a bug: say so at once (stop() re-raises it too)."""
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: %s failed", self.node_id, task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        """Stop the loops; pending submissions fail with OrdererStopped. Idempotent."""
        self._running = False
        if self._inspect_pool is not None:
            self._inspect_pool.shutdown(wait=True, cancel_futures=True)  # reap the workers
            self._inspect_pool = None
        self._tasks.extend(self._proposals)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        while self._verify_queue:
            _, fut = self._verify_queue.popleft()
            if not fut.done():
                fut.set_exception(OrdererStopped("ordering service stopped"))
        while self._conf_requests:
            _, cfut = self._conf_requests.popleft()
            if not cfut.done():
                cfut.set_exception(OrdererStopped("ordering service stopped"))
        if self._own_verifier and self._verifier is not None:
            self._verifier.close()

    # ------------------------------------------------------------------------- submission
    async def submit(self, tx_bytes: bytes) -> bytes:
        """Submit one transaction; its tx id once admitted. Raises OrdererError or NotLeader."""
        (res,) = await self.submit_many([tx_bytes])
        if isinstance(res, BaseException):
            raise res
        return res

    async def submit_many(self, txs: Sequence[bytes]) -> list[bytes | OrdererError]:
        """Submit transactions; per item the tx id (admitted) or the refusal. Raises NotLeader
        (follower in no-forward mode, or no leader known) and OrdererStopped."""
        if not self._running:
            raise OrdererStopped("ordering service is not running")
        self._check_role()
        if self._lead_term is None:
            return await self._forward_many(txs)
        inspected = await self._inspect(txs)
        if self._lead_term is None:  # lost leadership while workers checked the batch
            return await self._forward_many(txs)
        admitted, results = self._pool.admit_batch(inspected)
        if len(admitted) != len(results):
            rejects = self.metrics.rejects
            for r in results:
                if isinstance(r, OrdererError):
                    rejects[r.reason] += 1
        if not admitted:
            return results
        if self._checker is None:
            self._incoming.extend(admitted)
            self._wake.set()
            return results
        slots = [i for i, r in enumerate(results) if type(r) is bytes]
        fut: asyncio.Future[list[OrdererError | None]] = asyncio.get_running_loop().create_future()
        self._verify_queue.append((admitted, fut))
        self._verify_wake.set()
        for slot, err in zip(slots, await fut, strict=True):
            if err is not None:
                results[slot] = err
        return results

    async def propose_conf_change(self, cc: ConfChange) -> int:
        """Propose a Raft membership change through the ordering leader; its log index.

        It goes through the leader loop, between block proposals, so the indices stamped into
        blocks stay right (an entry slipped in between would make the next blocks skipped).
        Raises NotLeader, ConfChangeRefused, ProposalDropped or OrdererStopped.
        """
        if not self._running:
            raise OrdererStopped("ordering service is not running")
        self._check_role()
        if self._lead_term is None:
            raise NotLeader(self._raft.status().leader)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._conf_requests.append((cc, fut))
        self._wake.set()
        return await fut

    async def _propose_conf_changes(self) -> None:
        """Leader loop: wait until every block proposal is appended, then append the change."""
        while self._conf_requests and self._lead_term is not None:
            if self._proposals:
                await asyncio.wait(set(self._proposals))
                continue  # leadership may have changed meanwhile: re-check
            cc, fut = self._conf_requests.popleft()
            if fut.done():
                continue
            expected = self._next_index
            try:
                index = await self._raft.propose_conf_change(cc)
            except RaftError as exc:
                fut.set_exception(exc)
                continue
            fut.set_result(index)
            self._next_index = index + 1
            if index != expected and self._lead_term is not None:
                self._resync_leader()

    async def _inspect(self, txs: Sequence[bytes]) -> list[TxInfo | InvalidTransaction]:
        """The structural check of each transaction, on worker processes for large batches."""
        channel, max_bytes = self.channel, self._batch.absolute_max_bytes
        pool = self._inspect_pool
        if pool is None or len(txs) < self.config.inspect_parallel_min:
            out: list[TxInfo | InvalidTransaction] = []
            for data in txs:
                try:
                    out.append(inspect_tx(data, channel, max_bytes))
                except InvalidTransaction as exc:
                    out.append(exc)
            return out
        # Anything but bytes is refused per item by the worker ("malformed"), as inline.
        datas = list(txs)
        loop = asyncio.get_running_loop()
        n = -(-len(datas) // self.config.inspect_workers)
        chunks = [datas[i : i + n] for i in range(0, len(datas), n)]
        parts = await asyncio.gather(
            *(loop.run_in_executor(pool, inspect_many, chunk, channel, max_bytes) for chunk in chunks)
        )
        result: list[TxInfo | InvalidTransaction] = []
        for chunk, (ids, leaves, refused) in zip(chunks, parts, strict=True):
            # Columns back into per-transaction tuples in C; refusals patched in by position.
            infos: list[TxInfo | InvalidTransaction] = list(zip(ids, leaves, chunk, strict=True))
            for i, reason, detail in refused:
                infos[i] = InvalidTransaction(reason, detail)
            result.extend(infos)
        return result

    async def _forward_many(self, txs: Sequence[bytes]) -> list[bytes | OrdererError]:
        leader = self._raft.status().leader
        if not self.config.forward or leader is None or leader == self.node_id:
            raise NotLeader(leader)

        async def one(data: bytes) -> bytes | OrdererError:
            async with self._forward_sem:
                try:
                    return await self._forward(leader, data)
                except OrdererError as exc:
                    return exc

        self.metrics.txs_forwarded += len(txs)
        if len(txs) == 1:
            return [await one(txs[0])]
        return list(await asyncio.gather(*(one(d) for d in txs)))

    async def _verify_loop(self) -> None:
        assert self._checker is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._verify_wake.wait()
            self._verify_wake.clear()
            while self._verify_queue:
                jobs = []
                infos: list[TxInfo] = []
                while self._verify_queue and len(infos) < self.config.verify_batch_max:
                    job = self._verify_queue.popleft()
                    jobs.append(job)
                    infos.extend(job[0])
                now_s = self._clock.now_ms() // 1000
                errors = await loop.run_in_executor(None, self._checker.check, infos, now_s)
                self._verified(jobs, errors)

    def _verified(
        self,
        jobs: list[tuple[list[TxInfo], asyncio.Future[list[OrdererError | None]]]],
        errors: list[InvalidTransaction | None],
    ) -> None:
        """Hand verified transactions to the cutter, in submission order. If leadership was lost
        meanwhile they are dropped (a later leader may order the resubmissions; ordering these
        too could order a transaction twice)."""
        pos = 0
        lost: list[TxInfo] = []
        for job_infos, fut in jobs:
            errs = errors[pos : pos + len(job_infos)]
            pos += len(job_infos)
            for info, err in zip(job_infos, errs, strict=True):
                if err is not None:
                    self._pool.remove_pending([info])
                    self.metrics.rejects[err.reason] += 1
                elif self._lead_term is None:
                    lost.append(info)
                else:
                    self._incoming.append(info)
            if not fut.done():
                fut.set_result(list(errs))
        if lost:
            self._pool.remove_pending(lost)
            self._report_dropped([t[TX_ID] for t in lost], "leader_changed")
        self._wake.set()

    # --------------------------------------------------------------------------- delivery
    async def committed(self) -> AsyncIterator[OrderedBlock]:
        """Blocks in chain order, each exactly once (one consumer: the local committer)."""
        while True:
            yield await self._queue.get()

    @property
    def is_leader(self) -> bool:
        """Whether this node currently acts as the ordering leader."""
        return self._lead_term is not None

    def status(self) -> OrdererStatus:
        st = self._raft.status()
        return OrdererStatus(
            node_id=self.node_id,
            role=st.role,
            leader=st.leader,
            term=st.term,
            next_number=self._next_number,
            tip_hash=self._prev_hash,
            applied_index=self._applied_index,
            pool_txs=self._pool.pending_count,
            pool_bytes=self._pool.pending_bytes,
            inflight_blocks=len(self._inflight),
            delivery_queue=self._queue.qsize(),
        )

    # ------------------------------------------------------------------------------ apply
    async def apply(self, entries: Sequence[Entry]) -> None:
        """Committed entries, in log order (the Raft driver's apply step). Waits while the
        delivery queue is full."""
        for e in entries:
            if e.index <= self._applied_index:
                continue  # before the ledger tip (restart) or a snapshot: already handled
            self._applied_index = e.index
            self._drop_lost(e.index)
            if e.kind != EntryKind.NORMAL or not e.data:
                self._resolve_own(e.index, None)
                continue
            block = self._extend(e)
            if block is not None:
                await self._queue.put(block)
                self._blocks_since_snapshot += 1
        if self._blocks_since_snapshot >= self.config.snapshot_every_blocks:
            self._blocks_since_snapshot = 0
            self._raft.request_snapshot(self._applied_index, self.snapshot_data())

    def _extend(self, e: Entry) -> OrderedBlock | None:
        """The apply rule (module docstring): extend the chain with ``e``'s block, or skip it."""
        try:
            parsed = read_header(e.data)
        except EncodingError:
            parsed = None
        h = parsed.header if parsed is not None else None
        if (
            parsed is None
            or h is None
            or h.channel != self.channel
            or h.number != self._next_number
            or h.previous_hash != self._prev_hash
            or h.term != e.term
            or h.index != e.index
        ):
            self.metrics.blocks_skipped += 1
            if not self._resolve_own(e.index, None) and parsed is not None:
                self._report_dropped(self._ids_of(e.data), "stale")
            return None
        self._next_number += 1
        self._prev_hash = parsed.hash
        self._tip_ts = h.timestamp_ms
        if not self._resolve_own(e.index, parsed.hash) and self._lead_term is not None:
            self._pool.add_recent(self._ids_of(e.data))
        self._remember(e.data)
        self.metrics.blocks_delivered += 1
        self.metrics.txs_ordered += parsed.tx_count
        return OrderedBlock(h.number, parsed.hash, h, e.data, parsed.tx_count)

    def _resolve_own(self, index: int, applied_hash: bytes | None) -> bool:
        """Settle the block expected at ``index`` (proposed by us, or found in our log tail when
        we became leader): ordered if the applied block is it, else dropped. A dropped block of
        ours means the leader tip is wrong: resync it. Returns whether one was expected."""
        expected = self._inflight.pop(index, None)
        if expected is None:
            return False
        ordered = expected == applied_hash
        ids = self._pool.resolve(index, ordered)
        if not ordered:
            self._report_dropped(ids, "lost")
            if self._lead_term is not None:
                self._resync_leader()
        return True

    def _drop_lost(self, index: int) -> None:
        """Expected blocks at indices below ``index`` that were never applied were truncated away."""
        for k in sorted(k for k in self._inflight if k < index):
            self._resolve_own(k, None)

    def _remember(self, data: bytes) -> None:
        self._recent_blocks.append(data)
        self._recent_bytes += len(data)
        while self._recent_bytes > self.config.recent_block_bytes_max and len(self._recent_blocks) > 1:
            self._recent_bytes -= len(self._recent_blocks.popleft())

    def _ids_of(self, data: bytes) -> list[bytes]:
        try:
            return block_tx_ids(data)
        except EncodingError:
            return []

    def _report_dropped(self, ids: Sequence[bytes], reason: str) -> None:
        if not ids:
            return
        self.metrics.txs_dropped += len(ids)
        if self._on_dropped is not None:
            self._on_dropped(ids, reason)

    # --------------------------------------------------------------------------- snapshots
    def snapshot_data(self) -> bytes:
        """The ordering state at the applied index: Raft snapshot data."""
        return encode([self._next_number - 1, self._prev_hash, self._tip_ts])

    def restore_snapshot(self, data: bytes, index: int) -> None:
        """A snapshot at Raft ``index`` was installed: continue the chain after its block, and
        ask the node (``on_state_transfer``) to fetch the blocks up to it from peers."""
        if not data:  # Raft's bootstrap snapshot: membership only, no ordering state yet
            self._applied_index = max(self._applied_index, index)
            return
        try:
            number, tip_hash, ts = decode(data)
        except (EncodingError, ValueError, TypeError) as exc:
            raise ValueError(f"bad ordering snapshot: {exc}") from exc
        self._applied_index = max(self._applied_index, index)
        if number + 1 <= self._next_number:
            return  # the ledger is already at or past the snapshot
        self._next_number = number + 1
        self._prev_hash = tip_hash
        self._tip_ts = ts
        self._recent_blocks.clear()
        self._recent_bytes = 0
        if self._on_state_transfer is not None:
            self._on_state_transfer(number, tip_hash)

    async def restore(self, snapshot: Snapshot) -> None:
        """The Raft driver's ``restore`` callback."""
        self.restore_snapshot(snapshot.data, snapshot.index)

    # ---------------------------------------------------------------------- leader logic
    def _check_role(self) -> None:
        st = self._raft.status()
        if st.role == Role.LEADER:
            if self._lead_term != st.term:
                self._become_leader(st)
        elif self._lead_term is not None:
            self._step_down()

    def _become_leader(self, st: RaftStatusLike) -> None:
        """Derive the leader tip from the applied chain plus the unapplied tail of our log."""
        if self._lead_term is not None:
            self._step_down()
        self._lead_term = st.term
        self._pool.clear_recent()
        for data in self._recent_blocks:
            self._pool.add_recent(self._ids_of(data))
        if self._proposals:  # proposals of an earlier term of ours may still be in the driver
            self._resync_leader()
        else:
            self._derive_tip()
        log.info(
            "%s: leader of %s in term %d, next block %d", self.node_id, self.channel, st.term, self._tip_number + 1
        )

    def _resync_leader(self) -> None:
        """Our tip is wrong (a block of ours was lost, or took another index): re-derive it from
        the log once every proposal in flight has been appended or refused, so the log read is
        complete. The leader loop proposes nothing until then."""
        self._resync_pending = True
        self._wake.set()

    def _derive_tip(self) -> None:
        """The leader tip from the applied chain plus the unapplied tail of our log."""
        st = self._raft.status()
        number, prev, ts = self._next_number - 1, self._prev_hash, self._tip_ts
        for e in self._raft.entries(self._applied_index + 1, st.last_index + 1):
            if e.kind != EntryKind.NORMAL or not e.data:
                continue
            try:
                h = read_header(e.data)
            except EncodingError:
                continue
            hd = h.header
            if hd.number == number + 1 and hd.previous_hash == prev and hd.term == e.term and hd.index == e.index:
                number, prev, ts = hd.number, h.hash, hd.timestamp_ms
                if e.index not in self._inflight:
                    self._inflight[e.index] = h.hash
                    self._pool.add_inflight_ids(e.index, self._ids_of(e.data))
        self._tip_number, self._tip_hash, self._lead_ts = number, prev, ts
        self._next_index = st.last_index + 1

    def _step_down(self) -> None:
        """Leadership lost: pending transactions are dropped (in-flight ones settle at apply)."""
        self._lead_term = None
        self._resync_pending = False
        pending = list(self._incoming)
        self._incoming.clear()
        pending.extend(self._cutter.cut())
        for b in self._ready:
            pending.extend(b)
        self._ready.clear()
        while self._conf_requests:
            _, fut = self._conf_requests.popleft()
            if not fut.done():
                fut.set_exception(NotLeader(None))
        self._pool.remove_pending(pending)
        self._report_dropped([t[TX_ID] for t in pending], "leader_changed")

    async def _leader_loop(self) -> None:
        while True:
            self._check_role()
            if self._lead_term is not None:
                await self._cut_and_propose()
            await self._wait()

    async def _wait(self) -> None:
        delay = self.config.status_poll_ms
        deadline = self._cutter.deadline_ms()
        if deadline is not None and self._lead_term is not None:
            delay = min(delay, max(deadline - self._clock.now_ms(), 0))
        if self._wake.is_set():
            self._wake.clear()
            return
        sleeper = asyncio.ensure_future(self._clock.sleep_ms(delay))
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()
        self._wake.clear()

    async def _cut_and_propose(self) -> None:
        if self._resync_pending:
            if self._proposals:
                await asyncio.wait(set(self._proposals))
            if self._lead_term is None:
                return
            self._resync_pending = False
            self._derive_tip()
        if self._conf_requests:
            await self._propose_conf_changes()
            if self._lead_term is None:
                return
        now = self._clock.now_ms()
        if self._incoming:
            incoming, self._incoming = self._incoming, []
            self._ready.extend(self._cutter.add(incoming, now))
        due = self._cutter.cut_if_due(now)
        if due:
            self._ready.append(due)
        while (
            self._ready
            and len(self._inflight) < self.config.inflight_blocks_max
            and self._lead_term is not None
            and not self._resync_pending
        ):
            self._propose(self._ready.popleft())

    def _propose(self, batch: list[TxInfo]) -> None:
        """Assemble the next block on the leader tip and hand it to Raft without waiting.

        Several proposals are in flight at once (Raft appends pipeline); the driver appends them
        in the order they were made, so each is stamped with the index it will take.
        """
        assert self._lead_term is not None
        predicted = self._next_index
        ab = assemble_block(
            channel=self.channel,
            number=self._tip_number + 1,
            previous_hash=self._tip_hash,
            txs=batch,
            timestamp_ms=max(self._clock.now_ms(), self._lead_ts),
            term=self._lead_term,
            index=predicted,
            signer=self._signer,
        )
        # Book the block before proposing: the entry may be applied before propose() returns.
        self._pool.to_inflight(predicted, batch)
        self._inflight[predicted] = ab.hash
        self._next_index = predicted + 1
        self._tip_number, self._tip_hash, self._lead_ts = ab.header.number, ab.hash, ab.header.timestamp_ms
        self.metrics.blocks_cut += 1
        self.metrics.txs_cut += len(batch)
        task = asyncio.create_task(self._await_proposal(predicted, ab.hash, ab.data))
        self._proposals.add(task)
        task.add_done_callback(self._proposals.discard)

    async def _await_proposal(self, predicted: int, block_hash: bytes, data: bytes) -> None:
        try:
            index = await self._raft.propose(data)
        except (NotLeader, ProposalDropped) as exc:
            log.info("%s: proposal for index %d failed: %s", self.node_id, predicted, exc)
            if self._inflight.get(predicted) == block_hash:
                del self._inflight[predicted]
                self._report_dropped(self._pool.resolve(predicted, False), "proposal_dropped")
                if self._lead_term is not None and isinstance(exc, ProposalDropped):
                    self._resync_leader()
            self._wake.set()  # the leader loop re-reads the role
            return
        if index != predicted and self._inflight.get(predicted) == block_hash:
            # Another entry took the index we stamped: every node will skip this block when it is
            # applied at ``index``; book it there so its transactions are reported then.
            del self._inflight[predicted]
            self._pool.add_inflight_ids(index, self._pool.resolve(predicted, False))
            self._inflight[index] = block_hash
            self._resync_leader()
