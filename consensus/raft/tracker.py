"""The leader's view of each follower (match/next, flow control) and quorum arithmetic.

Progress states follow etcd-io/raft's ``tracker/``:

* PROBE: we do not know the follower's last matching index; send one append per heartbeat
  interval and wait for its answer (§5.3 "the leader decrements nextIndex and retries").
* REPLICATE: the follower is in sync; pipeline appends optimistically, bounded by
  :class:`Inflights` (``max_inflight_msgs``).
* SNAPSHOT: the follower needs entries we have compacted (§7); wait for it to install the
  snapshot, or retry after a timeout (a dropped InstallSnapshot must not stall it forever).

This module must never perform I/O; it only does bookkeeping.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

__all__ = ["Inflights", "Progress", "ProgressState", "VoteResult", "quorum_index", "vote_result"]


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """Last indices of the appends sent but not yet acknowledged, oldest first."""

    def __init__(self, capacity: int) -> None:
        assert capacity > 0
        self.capacity = capacity
        self._q: deque[int] = deque()

    def add(self, last_index: int) -> None:
        assert not self.full(), "sending beyond the in-flight limit"
        self._q.append(last_index)

    def free_le(self, index: int) -> None:
        while self._q and self._q[0] <= index:
            self._q.popleft()

    def free_first(self) -> None:
        if self._q:
            self._q.popleft()

    def full(self) -> bool:
        return len(self._q) >= self.capacity

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()


@dataclass(slots=True)
class Progress:
    match: int
    next: int
    inflights: Inflights
    is_learner: bool = False
    state: ProgressState = ProgressState.PROBE
    # In PROBE, set after one append is sent; cleared by a response or heartbeat response.
    probe_sent: bool = False
    pending_snapshot: int = 0
    # Ticks spent waiting in SNAPSHOT state; past a bound we fall back to PROBE and resend.
    snapshot_wait_ticks: int = 0
    # Leader ticks since this peer last answered; "active" means below an election timeout
    # (check-quorum, thesis §6.2, and the membership-change reachability check).
    inactive_ticks: int = 0

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.reset()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.reset()

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = index
        self.snapshot_wait_ticks = 0
        self.probe_sent = False
        self.inflights.reset()

    def maybe_update(self, n: int) -> bool:
        """The follower acknowledged up to ``n``; returns True if ``match`` advanced."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def sent_entries(self, last: int, count: int) -> None:
        """Record an append carrying ``count`` entries ending at ``last``."""
        if self.state == ProgressState.REPLICATE:
            if count:
                self.next = last + 1
                self.inflights.add(last)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A rejected append at ``rejected``; returns False if the rejection is stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # stale: we already know it matches there
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # stale: not the probe we sent last
        self.next = max(min(rejected, match_hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True


def quorum_index(voters: tuple[str, ...], match: dict[str, int]) -> int:
    """Largest index replicated on a majority of ``voters`` (§5.3 commit rule)."""
    if not voters:
        return 0
    vals = sorted((match.get(v, 0) for v in voters), reverse=True)
    return vals[len(vals) // 2]


class VoteResult(enum.IntEnum):
    PENDING = 0
    WON = 1
    LOST = 2


def vote_result(voters: tuple[str, ...], votes: dict[str, bool]) -> VoteResult:
    """Majority of ``voters`` granted → WON; a majority can no longer be reached → LOST."""
    need = len(voters) // 2 + 1
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING
