"""Value types of the Raft core: log entries, messages, persistent state, errors, wire form.

Everything here is a frozen, slotted dataclass or an ``IntEnum`` with stable integer tags, so a
value can be compared, hashed, logged and put on the wire unchanged. ``to_wire``/``from_wire``
map each type to and from the plain values accepted by :func:`crypto.encoding.encode` (ints,
bytes, str, bool, None, tuples); ``from_wire`` rejects anything malformed with
:class:`WireError` and never lets another exception escape for bad input.

This module must never perform I/O, read the clock, or hold mutable state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from crypto.encoding import EncodingError, decode, encode

__all__ = [
    "NONE",
    "Compacted",
    "ConfChange",
    "ConfChangeRefused",
    "ConfChangeType",
    "ConfState",
    "Entry",
    "EntryKind",
    "HardState",
    "Message",
    "MsgType",
    "NotLeader",
    "ProposalDropped",
    "ProtocolViolation",
    "RaftError",
    "Role",
    "Snapshot",
    "Unavailable",
    "WireError",
]

# "No node": an empty string is never a valid node id (RaftConfig rejects it).
NONE = ""


# --------------------------------------------------------------------------------------- errors
class RaftError(Exception):
    """Base class of the expected (typed) errors of the Raft core and its storage."""


class ProposalDropped(RaftError):
    """The proposal was not appended (leadership transfer in progress, or too many uncommitted bytes)."""


class NotLeader(RaftError):
    """Only the leader accepts proposals; ``leader_hint`` is the leader this node knows of, if any."""

    def __init__(self, leader_hint: str | None) -> None:
        super().__init__(f"not the leader (leader hint: {leader_hint!r})")
        self.leader_hint = leader_hint


class ConfChangeRefused(RaftError):
    """A membership change was refused before it reached the log; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Compacted(RaftError):
    """The requested index lies before the first index kept in storage (compacted into a snapshot)."""


class Unavailable(RaftError):
    """The requested index lies beyond the last index in storage, or no snapshot is available yet."""


class WireError(ValueError):
    """Bytes or values received from a peer are not a well-formed Raft message."""


class ProtocolViolation(RaftError):
    """A decodable message that no correct peer sends (e.g. non-contiguous entries). The peer
    is at fault: drop the message and penalise or disconnect it; our state is unchanged."""


# -------------------------------------------------------------------------------------- enums
class Role(enum.IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class MsgType(enum.IntEnum):
    """Stable tags: they are on the wire, never renumber."""

    APP = 1  # append entries (Raft paper §5.3)
    APP_RESP = 2
    VOTE = 3  # request vote (§5.2)
    VOTE_RESP = 4
    PRE_VOTE = 5  # pre-vote (Raft thesis §9.6)
    PRE_VOTE_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAP = 9  # install snapshot (§7)
    TIMEOUT_NOW = 10  # leadership transfer (thesis §3.10)


class EntryKind(enum.IntEnum):
    NORMAL = 0  # application data
    CONF_CHANGE = 1  # data is an encoded ConfChange
    EMPTY = 2  # the no-op a new leader appends (§5.4.2, §8)


class ConfChangeType(enum.IntEnum):
    ADD_LEARNER = 1
    PROMOTE = 2
    REMOVE = 3


# ------------------------------------------------------------------------------------- values
@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership: voters elect and commit; learners only receive the log."""

    voters: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()

    def to_wire(self) -> tuple[Any, ...]:
        return (tuple(self.voters), tuple(self.learners))

    @classmethod
    def from_wire(cls, obj: Any) -> ConfState:
        voters, learners = _tuple(obj, 2, "ConfState")
        return cls(_str_tuple(voters), _str_tuple(learners))


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One-server-at-a-time membership change (Raft thesis §4.1)."""

    kind: ConfChangeType
    node_id: str

    def to_wire(self) -> tuple[Any, ...]:
        return (int(self.kind), self.node_id)

    @classmethod
    def from_wire(cls, obj: Any) -> ConfChange:
        kind, node = _tuple(obj, 2, "ConfChange")
        return cls(_enum(ConfChangeType, kind), _nonempty_str(node))

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        try:
            return cls.from_wire(decode(data))
        except EncodingError as exc:
            raise WireError(f"bad ConfChange: {exc}") from exc


# Fixed per-entry overhead counted in byte limits, so that empty entries still cost something.
ENTRY_OVERHEAD_BYTES = 16


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    @property
    def size(self) -> int:
        return len(self.data) + ENTRY_OVERHEAD_BYTES

    def conf_change(self) -> ConfChange:
        assert self.kind == EntryKind.CONF_CHANGE, self
        return ConfChange.decode(self.data)

    def to_wire(self) -> tuple[Any, ...]:
        return (self.term, self.index, int(self.kind), self.data)

    @classmethod
    def from_wire(cls, obj: Any) -> Entry:
        term, index, kind, data = _tuple(obj, 4, "Entry")
        return cls(_uint(term), _uint(index), _enum(EntryKind, kind), _bytes(data))


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on stable storage before a node answers RPCs (Raft paper Figure 2)."""

    term: int = 0
    vote: str = NONE
    commit: int = 0

    def to_wire(self) -> tuple[Any, ...]:
        return (self.term, self.vote, self.commit)

    @classmethod
    def from_wire(cls, obj: Any) -> HardState:
        term, vote, commit = _tuple(obj, 3, "HardState")
        return cls(_uint(term), _str(vote), _uint(commit))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State at ``index`` (opaque ``data``) plus the term of that entry and the membership then."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.index == 0

    def to_wire(self) -> tuple[Any, ...]:
        return (self.index, self.term, self.conf_state.to_wire(), self.data)

    @classmethod
    def from_wire(cls, obj: Any) -> Snapshot:
        index, term, cs, data = _tuple(obj, 4, "Snapshot")
        return cls(_uint(index), _uint(term), ConfState.from_wire(cs), _bytes(data))


@dataclass(frozen=True, slots=True)
class Message:
    """A Raft RPC. Field meaning follows the type (see ``core.py`` handlers):

    APP: ``log_term``/``index`` of the entry preceding ``entries``, leader ``commit``.
    APP_RESP: ``index`` = last matching index, or on ``reject`` the rejected index with
    ``reject_hint``/``log_term`` = the follower's hint for fast backtracking (§5.3).
    VOTE/PRE_VOTE: candidate's last ``log_term``/``index``; ``force`` set for a leadership transfer.
    """

    type: MsgType
    src: str
    dst: str
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    force: bool = False

    def to_wire(self) -> tuple[Any, ...]:
        return (
            int(self.type),
            self.src,
            self.dst,
            self.term,
            self.log_term,
            self.index,
            tuple(e.to_wire() for e in self.entries),
            self.commit,
            self.reject,
            self.reject_hint,
            None if self.snapshot is None else self.snapshot.to_wire(),
            self.force,
        )

    @classmethod
    def from_wire(cls, obj: Any) -> Message:
        (t, src, dst, term, log_term, index, ents, commit, reject, hint, snap, force) = _tuple(obj, 12, "Message")
        if not isinstance(ents, (tuple, list)):
            raise WireError("Message.entries must be an array")
        return cls(
            type=_enum(MsgType, t),
            src=_nonempty_str(src),
            dst=_nonempty_str(dst),
            term=_uint(term),
            log_term=_uint(log_term),
            index=_uint(index),
            entries=tuple(Entry.from_wire(e) for e in ents),
            commit=_uint(commit),
            reject=_bool(reject),
            reject_hint=_uint(hint),
            snapshot=None if snap is None else Snapshot.from_wire(snap),
            force=_bool(force),
        )

    def check_well_formed(self) -> None:
        """Raise :class:`ProtocolViolation` unless the fields are consistent with the type."""
        if self.src == self.dst:
            raise ProtocolViolation("message addressed to its sender")
        if self.entries and self.type != MsgType.APP:
            raise ProtocolViolation(f"{self.type.name} carries entries")
        if (self.snapshot is not None) != (self.type == MsgType.SNAP):
            raise ProtocolViolation("snapshot present iff the message is SNAP")
        prev_term = self.log_term
        for i, e in enumerate(self.entries):
            if e.index != self.index + 1 + i:
                raise ProtocolViolation(f"entry {i} has index {e.index}, expected {self.index + 1 + i}")
            if e.term < prev_term or e.term > self.term:
                raise ProtocolViolation(f"entry {e.index} has term {e.term} out of order")
            prev_term = e.term
        if self.snapshot is not None and (self.snapshot.index == 0 or not self.snapshot.conf_state.voters):
            raise ProtocolViolation("empty snapshot")

    def __str__(self) -> str:
        parts = [f"{self.src}->{self.dst} {self.type.name} term={self.term}"]
        if self.type in (MsgType.APP, MsgType.VOTE, MsgType.PRE_VOTE):
            parts.append(f"log={self.log_term}/{self.index}")
        elif self.type == MsgType.APP_RESP:
            parts.append(f"index={self.index}")
        if self.type in (MsgType.APP, MsgType.HEARTBEAT):
            parts.append(f"commit={self.commit}")
        if self.entries:
            parts.append("entries=[" + " ".join(_entry_str(e) for e in self.entries) + "]")
        if self.reject:
            parts.append("rejected")
            if self.type == MsgType.APP_RESP:
                parts.append(f"hint={self.log_term}/{self.reject_hint}")
        if self.snapshot is not None:
            s = self.snapshot
            parts.append(f"snap={s.term}/{s.index} voters={','.join(s.conf_state.voters)}")
        if self.force:
            parts.append("force")
        return " ".join(parts)


def _entry_str(e: Entry) -> str:
    if e.kind == EntryKind.EMPTY:
        return f"{e.term}/{e.index}"
    if e.kind == EntryKind.CONF_CHANGE:
        cc = e.conf_change()
        return f"{e.term}/{e.index} {cc.kind.name}({cc.node_id})"
    if not e.data:
        return f"{e.term}/{e.index} ''"
    return f"{e.term}/{e.index} {e.data.decode('utf-8', 'backslashreplace')}"


# ------------------------------------------------------------------------ wire value checking
def _tuple(obj: Any, n: int, what: str) -> tuple[Any, ...]:
    if not isinstance(obj, (tuple, list)) or len(obj) != n:
        raise WireError(f"{what} must be an array of {n} values")
    return tuple(obj)


def _uint(v: Any) -> int:
    if type(v) is not int or v < 0 or v >= 2**63:
        raise WireError(f"expected an unsigned 63-bit integer, got {v!r}")
    return v


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise WireError(f"expected a bool, got {v!r}")
    return v


def _bytes(v: Any) -> bytes:
    if type(v) is not bytes:
        raise WireError(f"expected bytes, got {type(v).__name__}")
    return v


def _str(v: Any) -> str:
    if type(v) is not str:
        raise WireError(f"expected a str, got {type(v).__name__}")
    return v


def _nonempty_str(v: Any) -> str:
    s = _str(v)
    if not s:
        raise WireError("node id must not be empty")
    return s


def _str_tuple(v: Any) -> tuple[str, ...]:
    if not isinstance(v, (tuple, list)):
        raise WireError("expected an array of node ids")
    return tuple(_nonempty_str(x) for x in v)


def _enum(cls: Any, v: Any) -> Any:
    if type(v) is not int:
        raise WireError(f"expected an integer tag for {cls.__name__}, got {v!r}")
    try:
        return cls(v)
    except ValueError as exc:
        raise WireError(f"unknown {cls.__name__} tag {v}") from exc
