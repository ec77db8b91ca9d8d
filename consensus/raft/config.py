"""Static configuration of one Raft node (frozen once the node starts).

This module must never perform I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RaftConfig"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Parameters of one Raft node. Durations are counted in ticks of the driver's timer.

    ``initial_voters`` bootstraps a brand-new cluster: used only when storage is empty. A node
    that joins later starts with no voters and learns the membership from the leader's snapshot.
    """

    id: str
    initial_voters: tuple[str, ...] = ()
    # Followers wait a random timeout in [election_ticks, 2*election_ticks) (Raft paper §5.2).
    election_ticks: int = 10
    # The leader sends heartbeats every heartbeat_ticks; must be well below election_ticks (§5.6).
    heartbeat_ticks: int = 1
    # Appends in flight to one follower: bounds the memory a slow follower pins on the leader and
    # on the transport (256 × 1 MiB worst case); enough to keep a LAN pipe full.
    max_inflight_msgs: int = 256
    # Bytes of entries in one append; 1 MiB keeps one message well below the transport frame limit.
    max_size_per_msg: int = 1 * MiB
    # Bytes of proposed-but-uncommitted payload the leader accepts before dropping proposals;
    # bounds the leader's log growth when a quorum is unreachable.
    max_uncommitted_bytes: int = 64 * MiB
    # Committed entries handed to the application per Ready (bounds one apply batch).
    max_committed_bytes_per_ready: int = 16 * MiB
    pre_vote: bool = True
    check_quorum: bool = True
    # The application's last applied index, when it persists its own state (e.g. a block store):
    # committed entries at or before it are not handed out again after a restart.
    applied: int = 0

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("node id must not be empty")
        if self.heartbeat_ticks <= 0:
            raise ValueError("heartbeat_ticks must be positive")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("election_ticks must be greater than heartbeat_ticks")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be positive")
        if self.max_size_per_msg <= 0 or self.max_uncommitted_bytes <= 0:
            raise ValueError("byte limits must be positive")
        if len(set(self.initial_voters)) != len(self.initial_voters) or "" in self.initial_voters:
            raise ValueError("initial_voters must be distinct, non-empty ids")
        if self.applied < 0:
            raise ValueError("applied must not be negative")
