"""``RawNode``: the synchronous, sans-I/O API of the Raft core (modelled on etcd-io/raft's
``rawnode.go``).

The application loop is::

    node.tick() / node.step(msg) / node.propose(data) ...
    if node.has_ready():
        rd = node.ready()
        persist(storage, rd)          # 1. hard state, entries, snapshot: one durable write
        send(rd.messages)             # 2. only now may messages leave (Raft paper Figure 2)
        apply(rd.snapshot?, rd.committed_entries)   # 3. in log order, exactly once
        node.advance(rd)              # 4.

The order is enforced: ``rd.messages`` raises :class:`DurabilityOrderError` while the Ready holds
state to persist and :func:`persist` has not run, and ``ready()`` refuses to hand out a second
Ready before ``advance``. Membership changes in committed entries are applied to the core by
``advance`` (the application sees them too, e.g. to update its address book).

This module must never read the clock, touch sockets or disk, or use module-level ``random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from consensus.raft.config import RaftConfig
from consensus.raft.raft import Raft
from consensus.raft.storage import Storage, WritableStorage
from consensus.raft.tracker import ProgressState
from consensus.raft.types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    Role,
    Snapshot,
    Unavailable,
)

__all__ = [
    "DurabilityOrderError",
    "PeerProgress",
    "RawNode",
    "Ready",
    "SoftState",
    "Status",
    "persist",
]

# Size of the conf-change replay reads at start-up (bounded memory while scanning the log).
_REPLAY_CHUNK_BYTES = 4 * 1024 * 1024


class DurabilityOrderError(RuntimeError):
    """Local misuse: messages taken before the Ready's state was persisted, or Ready/advance
    called out of order. A bug in the caller, never caused by a peer."""


@dataclass(frozen=True, slots=True)
class SoftState:
    leader: str | None
    role: Role


@dataclass(slots=True)
class Ready:
    """One batch of work for the application, to be handled in the documented order."""

    soft_state: SoftState | None
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed_entries: tuple[Entry, ...]
    _messages: tuple[Message, ...] = field(repr=False)
    _persisted: bool = field(default=False, repr=False)

    @property
    def must_persist(self) -> bool:
        return self.hard_state is not None or bool(self.entries) or self.snapshot is not None

    def mark_persisted(self) -> None:
        """Declare the Ready's state durable; called by :func:`persist` after the write returned."""
        self._persisted = True

    @property
    def messages(self) -> tuple[Message, ...]:
        """Messages to send; available only once the Ready's state is on stable storage."""
        if self.must_persist and not self._persisted:
            raise DurabilityOrderError("messages requested before the Ready was persisted")
        return self._messages


def persist(storage: WritableStorage, rd: Ready) -> None:
    """Step 1 of the loop: one durable write of the Ready's snapshot, entries and hard state."""
    if rd.must_persist:
        storage.save(rd.hard_state, list(rd.entries), rd.snapshot)
    rd.mark_persisted()


@dataclass(frozen=True, slots=True)
class PeerProgress:
    match: int
    next: int
    state: ProgressState
    is_learner: bool
    active: bool


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    term: int
    vote: str
    leader: str | None
    role: Role
    commit: int
    applied: int
    last_index: int
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    # Filled only on the leader.
    progress: dict[str, PeerProgress]
    lead_transferee: str | None


class RawNode:
    """The Raft core behind an etcd-style synchronous API. Not thread-safe; one owner."""

    def __init__(self, config: RaftConfig, storage: Storage, rng: random.Random) -> None:
        self._r = Raft(config, storage, rng)
        hs, cs = storage.initial_state()
        r = self._r
        fresh = storage.last_index() == 0 and hs == HardState() and not cs.voters
        if fresh and config.initial_voters:
            # Bootstrap a new cluster: the initial membership is a snapshot at index 1, term 1,
            # persisted through the first Ready like any other state. Nodes that join later
            # receive it (or a newer snapshot) from the leader, so they learn the membership.
            boot = Snapshot(1, 1, ConfState(tuple(sorted(config.initial_voters)), ()), b"")
            r.restore(boot)
            r.become_follower(1, NONE)
        else:
            snap = storage.snapshot()
            r.set_conf(cs)
            r.conf_applied = snap.index
            r.conf_history = [(snap.index, r.conf_state())]
            r.load_state(hs)
            self._replay_conf_changes(storage, snap.index, hs.commit)
            r.become_follower(hs.term, NONE)
            r.vote = hs.vote
            applied = min(max(config.applied, r.log.applied), r.log.committed)
            r.log.applied = applied
        # A snapshot already in storage that the application has not restored yet (it crashed
        # between persisting a received snapshot and restoring it, or it is the bootstrap one
        # and config.applied is 0): the application must restore it before applying entries.
        snap = storage.snapshot()
        self.startup_snapshot: Snapshot | None = (
            snap if not fresh and not snap.is_empty() and snap.index > config.applied else None
        )
        self._prev_hard = hs
        self._prev_soft = SoftState(None, Role.FOLLOWER)
        self._outstanding = False

    def _replay_conf_changes(self, storage: Storage, after: int, commit: int) -> None:
        """Membership after a restart: snapshot's conf state plus committed conf-change entries."""
        lo = after + 1
        while lo <= commit:
            ents = storage.entries(lo, commit + 1, _REPLAY_CHUNK_BYTES)
            for e in ents:
                if e.kind == EntryKind.CONF_CHANGE:
                    self._r.apply_conf_change(e.index, e.conf_change())
            lo = ents[-1].index + 1

    # ---------------------------------------------------------------------------- inputs
    def tick(self) -> None:
        self._r.tick()

    def step(self, msg: Message) -> None:
        """Feed a message from a peer. Messages for other nodes or from old terms are handled
        by the protocol rules (ignored or answered). A malformed message raises
        :class:`ProtocolViolation` before it touches any state."""
        msg.check_well_formed()
        self._r.step(msg)

    def campaign(self) -> None:
        """Start an election now (pre-vote first if enabled). No-op for learners and leaders."""
        self._r.hup()

    def propose(self, data: bytes) -> int:
        """Append ``data`` as a normal entry; returns its log index.

        Raises :class:`NotLeader` or :class:`ProposalDropped`. The entry may still be lost if
        leadership changes before it commits: watch committed entries for it.
        """
        return self._r.propose(bytes(data), EntryKind.NORMAL)

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Append a one-server membership change; it takes effect when applied (advance).

        Raises :class:`NotLeader`, :class:`ProposalDropped` or :class:`ConfChangeRefused`.
        """
        return self._r.propose_conf_change(cc)

    def transfer_leadership(self, to: str) -> bool:
        """Ask voter ``to`` to take over (TimeoutNow once it is up to date). Proposals are
        dropped while the transfer runs (at most one election timeout). Raises NotLeader;
        returns False if ``to`` is not another voter."""
        return self._r.transfer_leadership(to)

    # ---------------------------------------------------------------------------- outputs
    def _soft(self) -> SoftState:
        return SoftState(self._r.lead or None, self._r.role)

    def has_ready(self) -> bool:
        r = self._r
        return (
            self._soft() != self._prev_soft
            or r.hard_state() != self._prev_hard
            or r.log.unstable_snapshot is not None
            or bool(r.log.unstable)
            or bool(r.msgs)
            or r.log.has_next_committed()
        )

    def ready(self) -> Ready:
        if self._outstanding:
            raise DurabilityOrderError("ready() called again before advance()")
        r = self._r
        soft = self._soft()
        hs = r.hard_state()
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hs if hs != self._prev_hard else None,
            entries=tuple(r.log.unstable),
            snapshot=r.log.unstable_snapshot,
            committed_entries=tuple(r.log.next_committed(r.cfg.max_committed_bytes_per_ready)),
            _messages=tuple(r.msgs),
        )
        r.msgs = []
        self._outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The Ready has been persisted, its messages sent and its entries applied."""
        if not self._outstanding:
            raise DurabilityOrderError("advance() without an outstanding Ready")
        if rd.must_persist and not rd._persisted:
            raise DurabilityOrderError("advance() before the Ready was persisted")
        r = self._r
        self._outstanding = False
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.snapshot is not None:
            r.log.stable_snap_to(rd.snapshot.index)
            if rd.snapshot.index > r.log.applied:
                r.log.applied_to(rd.snapshot.index)
        if rd.entries:
            last = rd.entries[-1]
            r.log.stable_to(last.index, last.term)
        if rd.committed_entries:
            for e in rd.committed_entries:
                if e.kind == EntryKind.CONF_CHANGE:
                    r.apply_conf_change(e.index, e.conf_change())
            last_applied = rd.committed_entries[-1].index
            if last_applied > r.log.applied:
                r.log.applied_to(last_applied)
            r.reduce_uncommitted(list(rd.committed_entries))

    # ---------------------------------------------------------------------------- queries
    def conf_state(self) -> ConfState:
        return self._r.conf_state()

    def conf_state_at(self, index: int) -> ConfState:
        """Membership as of log ``index`` (for a snapshot taken at that index)."""
        if index > self._r.log.applied:
            raise Unavailable(f"index {index} is not applied yet (applied {self._r.log.applied})")
        return self._r.conf_state_at(index)

    @property
    def id(self) -> str:
        return self._r.id

    @property
    def config(self) -> RaftConfig:
        return self._r.cfg

    @property
    def term(self) -> int:
        return self._r.term

    @property
    def leader(self) -> str | None:
        return self._r.lead or None

    @property
    def role(self) -> Role:
        return self._r.role

    def status(self) -> Status:
        r = self._r
        progress: dict[str, PeerProgress] = {}
        if r.role == Role.LEADER:
            for n, pr in sorted(r.prs.items()):
                progress[n] = PeerProgress(pr.match, pr.next, pr.state, pr.is_learner, r.is_active(n))
        return Status(
            id=r.id,
            term=r.term,
            vote=r.vote,
            leader=r.lead or None,
            role=r.role,
            commit=r.log.committed,
            applied=r.log.applied,
            last_index=r.log.last_index(),
            voters=r.voters,
            learners=r.learners,
            progress=progress,
            lead_transferee=r.lead_transferee or None,
        )
