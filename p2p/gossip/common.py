"""What the gossip core emits, what it needs from storage, and its named limits.

The core never performs an action itself: it returns :class:`Send`, :class:`Penalise` and
:class:`Discovered` values for its driver to carry out. Storage is reached only through the two
small protocols here, which the node adapts its ledger and blob store to.

This module holds types and constants only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from p2p.messages import Message
from p2p.verify import VerifiedBlock

__all__ = [
    "PVT_BLOB_MAX_BYTES",
    "PVT_PUSH_BYTES_MAX",
    "STATE_BATCH_BLOCKS_MAX",
    "STATE_BATCH_BYTES_MAX",
    "BlockStore",
    "Discovered",
    "GossipConfig",
    "Output",
    "Penalise",
    "PrivateStore",
    "Send",
]

# State transfer: most blocks one batch carries. With blocks of 500 transactions this is up to
# 32 000 transactions per round trip, enough to keep a catch-up pipeline full on a LAN.
STATE_BATCH_BLOCKS_MAX: Final = 64
# State transfer: most block bytes one batch carries (at least one block is always sent, and a
# block is at most BatchConfig.absolute_max_bytes = 10 MiB). Half of MAX_FRAME_BYTES, so a batch
# frame can never approach the frame limit.
STATE_BATCH_BYTES_MAX: Final = 8 * 1024 * 1024
# Largest private blob gossip carries. Scanner payloads are small; bulk data is off-chain and
# fetched by other means. 4 MiB keeps a blob well inside a frame.
PVT_BLOB_MAX_BYTES: Final = 4 * 1024 * 1024
# Most blob bytes in one PvtPush: keeps a push frame at half the frame limit.
PVT_PUSH_BYTES_MAX: Final = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Send:
    peer: str
    msg: Message


@dataclass(frozen=True, slots=True)
class Penalise:
    """Disconnect and temporarily ban ``peer`` (bad signature, invalid block, protocol abuse)."""

    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class Discovered:
    """Membership learned of a live node we may connect to."""

    node_id: str
    address: str


Output = Send | Penalise | Discovered


class BlockStore(Protocol):
    """One channel's blocks as gossip sees them (the node adapts its ``ChannelLedger``).

    ``deliver`` receives verified blocks in order, the first numbered ``height``; it must append
    them (or queue them for the committer) before returning, so that ``height`` afterwards counts
    them or the core's own record of delivered blocks (which it keeps) stays ahead of it.
    """

    @property
    def height(self) -> int: ...

    @property
    def tip_hash(self) -> bytes | None: ...

    def get_block_bytes(self, number: int) -> bytes: ...

    def deliver(self, blocks: Sequence[VerifiedBlock]) -> None: ...


class PrivateStore(Protocol):
    """Private blobs keyed by SHA-256, grouped by collection (the node adapts its blob store)."""

    def has(self, digest: bytes) -> bool: ...

    def get(self, digest: bytes) -> bytes | None: ...

    def put(self, collection: str, digest: bytes, data: bytes) -> None: ...

    def digests(self, collection: str, after: bytes, limit: int) -> list[bytes]:
        """Up to ``limit`` digests of ``collection`` greater than ``after``, in ascending order."""
        ...


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """Timers (milliseconds of the injected clock), fan-outs and per-peer bounds."""

    fanout: int = 3  # Fabric's default push fan-out (peer.gossip.propagatePeerNum)
    alive_interval_ms: int = 1000
    alive_expiry_ms: int = 10_000  # a member silent this long is considered dead
    dead_purge_ms: int = 60_000  # a dead member is forgotten after this long
    anti_entropy_interval_ms: int = 1000
    state_request_timeout_ms: int = 5000
    state_parallel_requests: int = 3  # outstanding batch requests, to different peers when possible
    state_batch_blocks: int = STATE_BATCH_BLOCKS_MAX
    pending_blocks_max: int = 128  # out-of-order pushed blocks held while the gap is fetched
    pvt_reconcile_interval_ms: int = 2000
    pvt_inventory_max: int = 1024  # digests per inventory message (32 KiB)
