"""asyncio driver for one :class:`RawNode`: timer ticks, inbox, proposals, and the Ready loop.

One task (``run``) owns the node; nothing else touches it. Each turn of the loop feeds the
node its inputs (ticks, inbox messages, local requests) and then handles every Ready in the
order the Raft paper requires (Figure 2, "respond after persisting")::

    persist(storage, rd)      # one synchronous write batch; returns only when durable
                              # (on a writer thread when the storage offers prepare_save)
    await send(rd.messages)   # rd.messages refuses to exist before persist() ran
    await restore(snapshot)   # if the Ready carries one (the application fetches its state)
    await apply(entries)      # committed entries, in log order, each exactly once
    node.advance(rd)

The application contract (the ordering service builds on it):

* ``await propose(data)`` returns the log index once the entry is appended to the leader's
  durable log, or raises :class:`NotLeader` (with a hint) / :class:`ProposalDropped`. An
  appended entry may still be lost to a leader change; it is committed when ``apply`` sees it.
* ``apply`` receives committed entries of every kind (normal, conf change, the leader's empty
  entries), so it can track the applied index; membership changes are applied to the core by
  the driver itself. Across restarts, pass ``RaftConfig.applied`` to skip what was applied.
* ``request_snapshot(index, data)``: the application's state at applied ``index``; the driver
  stores it and compacts the log after the current Ready.
* ``leader`` / ``status()`` tell who leads (``on_leader(leader)`` is told each change); ``stop(transfer=True)``
  hands leadership over first.

Durable writes off the event loop: when the storage offers ``prepare_save`` (LevelDB does), the
Ready is encoded on the loop, the fsync'd write runs on the driver's one writer thread (a
:class:`storage.writer.SyncWriter`, which has begun the write when ``submit`` returns), and the
loop waits for it before anything else of that Ready happens. The order above is unchanged; what
changes is that the event loop keeps serving other tasks (admission, block assembly, the
transport) while the disk syncs, instead of stalling for the whole fsync. Inputs arriving
meanwhile are stepped together in the next turn, so one fsync covers more work under load.
A write that does not sync (the storage says so: LevelDB does not sync a Ready that only moves
the commit index, volatile state in Raft's Figure 2) is done on the loop.

``send`` must not raise (the transport drops what it cannot deliver; Raft retransmits).
A malformed message from a peer is dropped, counted, and reported to ``on_violation(peer, exc)``
so the node can disconnect that peer.
An exception from ``apply`` or ``restore`` stops the driver: the application state is suspect.

This module must never touch sockets itself, nor read the wall clock: time comes from the
injected ``clock``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from consensus.clock import SystemClock
from consensus.raft.core import RawNode, Ready, Status, persist
from consensus.raft.storage import WritableStorage
from consensus.raft.types import (
    Compacted,
    ConfChange,
    Entry,
    Message,
    ProposalDropped,
    ProtocolViolation,
    RaftError,
    Role,
    Snapshot,
)
from storage.writer import SyncWriter

__all__ = ["INBOX_MAX", "Clock", "PreparedWrite", "RaftDriver", "SystemClock"]

T = TypeVar("T")

# Messages waiting to be stepped. A leader sends at most max_inflight_msgs appends per follower
# plus heartbeats; 4096 absorbs bursts from a 5-7 node cluster while bounding memory to a few
# hundred MiB in the worst case of full 1 MiB appends. Beyond it messages are dropped (Raft
# tolerates loss: it retransmits).
INBOX_MAX = 4096
# Local requests (proposals, conf changes, transfers) waiting for the loop: bounds the memory
# a burst of clients can pin; callers beyond it get ProposalDropped at once.
REQUESTS_MAX = 10_000
# Entries kept behind a snapshot for followers that are only slightly behind, so they get
# entries instead of a full snapshot (etcd keeps 5000 by default; blocks are larger here).
SNAPSHOT_KEEP_ENTRIES = 1000


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class PreparedWrite(Protocol):
    """A Ready's durable write prepared by the storage's ``prepare_save(hard, entries, snap)``."""

    @property
    def blocking(self) -> bool:
        """Whether ``write`` waits for the disk; a write that does not runs on the loop."""
        ...

    def write(self) -> None:
        """Write (and sync, when ``blocking``); a blocking write runs on the driver's writer thread."""
        ...

    def finish(self) -> None:
        """Back on the loop after ``write`` returned: the storage shows the new state."""
        ...


PrepareSave = Callable[[Any, list[Entry], Snapshot | None], PreparedWrite]


@dataclass
class _Request:
    kind: str  # "propose" | "conf" | "transfer"
    payload: bytes | ConfChange | str
    fut: asyncio.Future[int]


SendFn = Callable[[list[Message]], Awaitable[None] | None]
ApplyFn = Callable[[list[Entry]], Awaitable[None]]
RestoreFn = Callable[[Snapshot], Awaitable[None]]


class RaftDriver:
    def __init__(
        self,
        node: RawNode,
        storage: WritableStorage,
        send: SendFn,
        apply: ApplyFn,
        clock: Clock,
        tick_interval_s: float,
        *,
        restore: RestoreFn | None = None,
        inbox_max: int = INBOX_MAX,
        snapshot_keep_entries: int = SNAPSHOT_KEEP_ENTRIES,
        on_violation: Callable[[str, ProtocolViolation], None] | None = None,
        persist_off_loop: bool = True,
        on_leader: Callable[[str | None], None] | None = None,
    ) -> None:
        """``persist_off_loop``: run the storage's fsync'd writes on a writer thread when the
        storage offers ``prepare_save`` (see the module docstring); False keeps them inline."""
        if tick_interval_s <= 0:
            raise ValueError("tick_interval_s must be positive")
        self.node = node
        self.storage = storage
        self._send = send
        self._apply = apply
        self._restore = restore
        self.clock = clock
        self.tick_interval_s = tick_interval_s
        self._inbox: deque[Message] = deque()
        self._inbox_max = inbox_max
        self._requests: deque[_Request] = deque()
        self._awaiting_persist: list[tuple[int, int, asyncio.Future[int]]] = []
        self._snapshot_request: tuple[int, bytes, asyncio.Future[Snapshot]] | None = None
        self._snapshot_keep = snapshot_keep_entries
        self._ticks = 0
        self._tick_count = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        self._transfer_wait: tuple[int, asyncio.Future[None]] | None = None
        self._on_violation = on_violation
        self._on_leader = on_leader  # told each time the known leader changes (None: unknown)
        self.dropped_messages = 0
        self.protocol_violations = 0
        self.leader: str | None = None
        self.role = Role.FOLLOWER
        prepare = getattr(storage, "prepare_save", None) if persist_off_loop else None
        self._prepare_save: PrepareSave | None = prepare
        # One thread: Readies are written one at a time and in order. Created by run().
        self._writer: SyncWriter | None = None
        self._writing = False

    # ------------------------------------------------------------------------ inputs
    def deliver(self, msg: Message) -> bool:
        """Queue a message from a peer; False (and counted) if the inbox is full or stopping."""
        if self._stopping or len(self._inbox) >= self._inbox_max:
            self.dropped_messages += 1
            return False
        self._inbox.append(msg)
        self._wake.set()
        return True

    def _request(self, kind: str, payload: bytes | ConfChange | str) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self._stopping or len(self._requests) >= REQUESTS_MAX:
            fut.set_exception(ProposalDropped("driver stopping or request queue full"))
        else:
            self._requests.append(_Request(kind, payload, fut))
            self._wake.set()
        return fut

    async def propose(self, data: bytes) -> int:
        """Append ``data``; returns its index once durable on this (leader) node."""
        return await self._request("propose", bytes(data))

    async def propose_conf_change(self, cc: ConfChange) -> int:
        return await self._request("conf", cc)

    async def transfer_leadership(self, to: str) -> bool:
        return bool(await self._request("transfer", to))

    def request_snapshot(self, index: int, data: bytes) -> asyncio.Future[Snapshot]:
        """Record the application's state at applied ``index`` (callable from ``apply``).

        The snapshot is stored, and the log compacted behind it, after the current Ready is
        advanced. The returned future (which callers may ignore) yields the stored snapshot, or
        the current one if it is not older than ``index``; it raises Unavailable if ``index`` is
        not applied yet (a bug in the caller). A newer request replaces one not yet taken, which
        is then cancelled.
        """
        fut: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        if self._snapshot_request is not None:
            self._snapshot_request[2].cancel()
        self._snapshot_request = (index, bytes(data), fut)
        self._wake.set()
        return fut

    def status(self) -> Status:
        return self.node.status()

    @property
    def writing(self) -> bool:
        """Whether a Ready's durable write is on the writer thread (the loop has not resumed
        after it yet). Virtual-time tests wait for it so disk writes take no virtual time."""
        return self._writing

    # -------------------------------------------------------------------------- loop
    async def run(self) -> None:
        """Run until :meth:`stop`. Owns the ticker task; re-raises what breaks the loop."""
        if self._running:
            raise RuntimeError("driver already running")
        self._running = True
        if self._prepare_save is not None:
            self._writer = SyncWriter(f"raft-write-{self.node.id}")
        try:
            if self.node.startup_snapshot is not None and self._restore is not None:
                await self._restore(self.node.startup_snapshot)
            async with asyncio.TaskGroup() as tg:
                ticker = tg.create_task(self._ticker(), name=f"raft-ticker-{self.node.id}")
                try:
                    await self._loop()
                finally:
                    ticker.cancel()
        finally:
            self._running = False
            if self._writer is not None:
                self._writer.close()  # no write may outlive the driver (or its DB)
                self._writer = None
            self._fail_pending(ProposalDropped("driver stopped"))

    async def _ticker(self) -> None:
        while True:
            await self.clock.sleep(self.tick_interval_s)
            self._ticks += 1
            self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            self._feed_inputs()
            while self.node.has_ready():
                await self._handle_ready(self.node.ready())
            await self._take_snapshot()
            self._check_transfer_wait()

    def _feed_inputs(self) -> None:
        node = self.node
        while self._ticks:
            self._ticks -= 1
            self._tick_count += 1
            node.tick()
        while self._inbox:
            msg = self._inbox.popleft()
            try:
                node.step(msg)
            except ProtocolViolation as exc:
                self.protocol_violations += 1
                if self._on_violation is not None:
                    self._on_violation(msg.src, exc)
        while self._requests:
            req = self._requests.popleft()
            if req.fut.done():  # the caller was cancelled
                continue
            try:
                if req.kind == "propose":
                    assert isinstance(req.payload, bytes)
                    idx = node.propose(req.payload)
                elif req.kind == "conf":
                    assert isinstance(req.payload, ConfChange)
                    idx = node.propose_conf_change(req.payload)
                else:
                    assert isinstance(req.payload, str)
                    req.fut.set_result(int(node.transfer_leadership(req.payload)))
                    continue
            except RaftError as exc:  # typed errors go back to the caller; anything else is a bug
                req.fut.set_exception(exc)
                continue
            self._awaiting_persist.append((idx, node.term, req.fut))

    async def _handle_ready(self, rd: Ready) -> None:
        # 1. Durable first: nothing below may run before this returns.
        if self._writer is not None and self._prepare_save is not None and rd.must_persist:
            pending = self._prepare_save(rd.hard_state, list(rd.entries), rd.snapshot)
            if pending.blocking:
                await self._write_off_loop(pending)
            else:  # no fsync (a commit-index-only Ready): cheaper than a trip to the thread
                pending.write()
                pending.finish()
            rd.mark_persisted()
        else:
            persist(self.storage, rd)
        self._resolve_persisted()
        if rd.soft_state is not None:
            changed = rd.soft_state.leader != self.leader
            self.leader, self.role = rd.soft_state.leader, rd.soft_state.role
            if changed and self._on_leader is not None:
                self._on_leader(self.leader)
        # 2. Only now can the messages be read at all (Ready.messages enforces it).
        if rd.messages:
            res = self._send(list(rd.messages))
            if inspect.isawaitable(res):
                await res
        # 3. The application catches up: snapshot first, then entries in log order.
        if rd.snapshot is not None and self._restore is not None:
            await self._restore(rd.snapshot)
        if rd.committed_entries:
            await self._apply(list(rd.committed_entries))
        # 4.
        self.node.advance(rd)

    async def _write_off_loop(self, pending: PreparedWrite) -> None:
        """``pending.write()`` on the writer thread, then ``finish()`` here, even if this task is
        cancelled meanwhile (see :meth:`_on_writer`)."""
        assert self._writer is not None
        await self._on_writer(pending.write, then=pending.finish)

    def _resolve_persisted(self) -> None:
        if not self._awaiting_persist:
            return
        last = self.storage.last_index()
        keep = []
        for idx, term, fut in self._awaiting_persist:
            if idx > last:
                keep.append((idx, term, fut))
                continue
            if fut.done():
                continue
            try:
                same = self.storage.term(idx) == term
            except Compacted:
                same = True  # compacted means committed and applied: it was ours
            if same:
                fut.set_result(idx)
            else:
                fut.set_exception(ProposalDropped(f"entry {idx} was replaced by a new leader"))
        self._awaiting_persist = keep

    async def _on_writer(self, fn: Callable[[], T], then: Callable[[], None] | None = None) -> T:
        """``fn()`` on the writer thread when there is one (else here), then ``then()`` here. If
        this task is cancelled meanwhile, the write still completes (and ``then`` runs after a
        successful one) before the cancellation propagates: the storage must not be left
        half-updated or closed under a running write."""
        if self._writer is None:
            result = fn()
        else:
            self._writing = True
            fut = asyncio.wrap_future(self._writer.submit(fn))
            try:
                result = await asyncio.shield(fut)
            except asyncio.CancelledError:
                await asyncio.wait([fut])
                if then is not None and not fut.cancelled() and fut.exception() is None:
                    then()
                raise
            finally:
                self._writing = False
        if then is not None:
            then()
        return result

    async def _take_snapshot(self) -> None:
        """Store a requested snapshot and compact the log behind it: synchronous writes, on the
        writer thread like the Readies' (they used to stall the loop every few seconds)."""
        req, self._snapshot_request = self._snapshot_request, None
        if req is None:
            return
        index, data, fut = req
        current = self.storage.snapshot()
        if index <= current.index:
            fut.set_result(current)
            return
        storage = self.storage
        try:
            cs = self.node.conf_state_at(index)
            snap = await self._on_writer(lambda: storage.create_snapshot(index, cs, data))
        except RaftError as exc:
            if not fut.done():
                fut.set_exception(exc)
            return
        upto = index - self._snapshot_keep
        if upto >= storage.first_index():
            await self._on_writer(lambda: storage.compact(upto))
        if not fut.done():
            fut.set_result(snap)

    # ---------------------------------------------------------------------- shutdown
    def _check_transfer_wait(self) -> None:
        if self._transfer_wait is None:
            return
        deadline, fut = self._transfer_wait
        if self.role != Role.LEADER or self._tick_count >= deadline:
            if not fut.done():
                fut.set_result(None)
            self._transfer_wait = None

    def _best_transferee(self) -> str | None:
        st = self.node.status()
        peers = [(p.match, n) for n, p in st.progress.items() if n != st.id and n in st.voters and p.active]
        return max(peers)[1] if peers else None

    async def stop(self, transfer: bool = True) -> None:
        """Stop the loop; a leader first hands leadership to its most up-to-date active voter
        (thesis §3.10) and waits up to one election timeout for it to take over."""
        if transfer and self._running and self.role == Role.LEADER:
            target = self._best_transferee()
            if target is not None:
                await self.transfer_leadership(target)
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._transfer_wait = (self._tick_count + self.node.config.election_ticks, fut)
                self._wake.set()
                await fut
        self._stopping = True
        self._wake.set()

    def _fail_pending(self, exc: Exception) -> None:
        for req in self._requests:
            if not req.fut.done():
                req.fut.set_exception(exc)
        self._requests.clear()
        for _, _, fut in self._awaiting_persist:
            if not fut.done():
                fut.set_exception(exc)
        self._awaiting_persist = []
        if self._snapshot_request is not None:
            self._snapshot_request[2].cancel()
            self._snapshot_request = None
