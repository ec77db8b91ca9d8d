"""Raft consensus for the ordering service: a sans-I/O core (``RawNode``), its storage
(in-memory and LevelDB) and an asyncio driver.

Import from here; the submodules are implementation detail.
"""

from consensus.raft.config import RaftConfig
from consensus.raft.core import (
    DurabilityOrderError,
    PeerProgress,
    RawNode,
    Ready,
    SoftState,
    Status,
    persist,
)
from consensus.raft.storage import MemoryStorage, Storage, WritableStorage
from consensus.raft.tracker import ProgressState
from consensus.raft.types import (
    Compacted,
    ConfChange,
    ConfChangeRefused,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MsgType,
    NotLeader,
    ProposalDropped,
    ProtocolViolation,
    RaftError,
    Role,
    Snapshot,
    Unavailable,
    WireError,
)

__all__ = [
    "Compacted",
    "ConfChange",
    "ConfChangeRefused",
    "ConfChangeType",
    "ConfState",
    "DurabilityOrderError",
    "Entry",
    "EntryKind",
    "HardState",
    "MemoryStorage",
    "Message",
    "MsgType",
    "NotLeader",
    "PeerProgress",
    "ProgressState",
    "ProposalDropped",
    "ProtocolViolation",
    "RaftConfig",
    "RaftError",
    "RawNode",
    "Ready",
    "Role",
    "Snapshot",
    "SoftState",
    "Status",
    "Storage",
    "Unavailable",
    "WireError",
    "WritableStorage",
    "persist",
]
