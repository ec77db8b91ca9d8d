"""Private data of one channel on one node: what endorsement keeps, what commit applies, what is purged.

* Endorsement: contracts reach private state through :meth:`ChannelPrivateData.get_private` (the
  stub's :class:`~secprivnode.contracts.stub.PrivateReader`); the plaintext of their private
  writes is kept in the transient store (:meth:`keep`) and disseminated by the node
  (:mod:`secprivnode.privnet`) to member organisations' nodes only.
* Commit: :meth:`commit_ops` turns a coded block into puts for the same atomic batch as the block:
  for each VALID transaction and each collection it wrote whose member orgs include ours, the
  write set whose hashes match the transaction's hashed writes becomes private state at the
  transaction's version; a write set we do not hold becomes a recorded gap. Everything whose
  block-to-live ran out at this height is purged in the same batch.
* Reconciliation: :meth:`fill_gap` applies a write set pulled later, key by key, only where the
  hashed state still carries the transaction's version (a later write has superseded the rest).

A non-member node keeps nothing but the hashes the ledger holds (``storage.ledger``). This module
never does network I/O and never reads the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial

from secprivnode.contracts.stub import ContractError
from secprivnode.pipeline.membership import ChannelView
from storage import keys
from storage.errors import CorruptionError
from storage.ledger import ChannelLedger
from storage.model import Block, ChannelConfig, CollectionConfig, CollectionHashes, ValidationCode, Version
from storage.privstate import PrivateState, WriteSet, check_writes, key_hash

__all__ = ["MISSING_BATCH_MAX", "ChannelPrivateData", "gossip_name", "parse_gossip_name"]

log = logging.getLogger(__name__)

# Gaps looked at per reconciliation round: each may cost one request per member peer.
MISSING_BATCH_MAX = 64

Op = tuple[bytes, bytes | None]


def gossip_name(channel: str, ns: str, collection: str) -> str:
    """The name private-data gossip knows a collection by (collections are per channel and contract)."""
    return f"{channel}/{ns}/{collection}"


def parse_gossip_name(name: str) -> tuple[str, str, str] | None:
    parts = name.split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


class ChannelPrivateData:
    """See the module docstring. One per channel per node."""

    def __init__(self, ledger: ChannelLedger, org: str) -> None:
        self.ledger = ledger
        self.channel = ledger.channel
        self.org = org
        self.state = PrivateState(ledger.db.raw, keys.channel_prefix(ledger.channel))
        self._view = ChannelView(ledger)  # the config, decoded once per config version
        self.blobs_due: list[bytes] = []  # HTTP blob digests whose block-to-live ran out

    # -- configuration ---------------------------------------------------------------------------

    def config(self) -> ChannelConfig | None:
        """The channel's current configuration (cached per config version)."""
        return self._view.config()

    def collection(self, ns: str, name: str) -> CollectionConfig | None:
        cfg = self.config()
        return None if cfg is None else cfg.collection(ns, name)

    def is_member(self, ns: str, name: str, org: str | None = None) -> bool:
        c = self.collection(ns, name)
        return c is not None and (org or self.org) in c.member_orgs

    def collections(self) -> dict[str, frozenset[str]]:
        """Gossip name -> member orgs, for private-data gossip's authorisation."""
        cfg = self.config()
        if cfg is None:
            return {}
        return {gossip_name(self.channel, c.contract, c.name): frozenset(c.member_orgs) for c in cfg.collections}

    # -- endorsement (PrivateReader) -------------------------------------------------------------

    def check_collection(self, ns: str, collection: str) -> None:
        c = self.collection(ns, collection)
        if c is None:
            raise ContractError(f"contract {ns!r} has no private collection {collection!r}", 404)
        if self.org not in c.member_orgs:
            raise ContractError(
                f"organisation {self.org!r} is not a member of collection {collection!r}: endorse with a member's node",
                403,
            )

    def get_private(self, ns: str, collection: str, key: str) -> tuple[bytes, Version] | None:
        return self.state.get_private(ns, collection, key)

    def keep(self, write_sets: Sequence[WriteSet]) -> list[bytes]:
        """Keep our own endorsement's write sets in the transient store; their digests."""
        return [self.state.put_transient(ws, self.ledger.height) for ws in write_sets]

    def accept(self, blob: bytes, ns: str, collection: str) -> WriteSet:
        """A write set a member peer sent for ``ns``/``collection``: keep it if it is one and its
        transaction is not yet committed, or committed with this node's copy missing.

        ValueError when the blob is not a write set of that collection (the sender's fault)."""
        try:
            ws = WriteSet.decode(blob)
        except Exception as exc:  # CorruptionError and friends: not a write set
            raise ValueError(f"not a private write set: {exc}") from exc
        if (ws.namespace, ws.collection) != (ns, collection) or ws.encode() != blob:
            raise ValueError("write set does not belong to the collection it was sent for")
        loc = self.ledger.tx_location(ws.tx_id)
        if (
            loc is not None
            and loc[2] is ValidationCode.VALID
            and not self.state.has_gap(loc[0], loc[1], ns, collection)
        ):
            return ws  # committed and already applied (or purged): keeping it again would outlive its purge
        self.state.put_transient(ws, self.ledger.height)
        return ws

    # -- commit ----------------------------------------------------------------------------------

    def commit_ops(self, block: Block, codes: Sequence[ValidationCode]) -> list[Op]:
        """Puts for block ``block``'s private data and purges (same batch as the block)."""
        n = block.number
        cfg = self.config()
        ops: list[Op] = []
        if cfg is not None:
            for i, (tx, code) in enumerate(zip(block.transactions, codes, strict=True)):
                if code is not ValidationCode.VALID:
                    continue
                for rw in tx.rwsets:
                    for ch in rw.collections:
                        ops += self._apply(cfg, n, i, tx.tx_id, rw.namespace, ch)
        purge, self.blobs_due = self.state.purge_ops(n)
        ops += purge
        for sched, d in self.state.expired_transient(n):
            committed = False
            ws = self._stored(partial(_decode, self.state.get_blob(d)))
            if ws is not None:
                loc = self.ledger.tx_location(ws.tx_id)
                committed = loc is not None and loc[2] is ValidationCode.VALID
            ops += [(sched, None)] if committed else self.state.drop_transient_ops(sched, d)
        return ops

    def _apply(self, cfg: ChannelConfig, n: int, i: int, tx_id: bytes, ns: str, ch: CollectionHashes) -> list[Op]:
        c = cfg.collection(ns, ch.collection)
        if not ch.writes or c is None or self.org not in c.member_orgs:
            return []
        ws = self._stored(lambda: self.state.write_set(tx_id, ns, ch.collection))
        if ws is None or not check_writes(ws, ch):
            log.info("channel %s: block %d tx %d: private data of %s/%s missing", self.channel, n, i, ns, ch.collection)
            return [self.state.missing_op(n, i, ns, ch.collection)]
        return self.state.apply_ops(ws, (n, i), c.block_to_live)

    def _stored(self, read: Callable[[], WriteSet | None]) -> WriteSet | None:
        """A stored write set, or None when it is absent or damaged: a damaged copy counts as
        missing (it is pulled again) rather than stopping the chain's commits."""
        try:
            return read()
        except CorruptionError as exc:
            log.error("channel %s: a stored private write set is damaged: %s", self.channel, exc)
            return None

    # -- reconciliation --------------------------------------------------------------------------

    def gaps(self) -> list[tuple[bytes, int, int, str, str]]:
        return self.state.missing(MISSING_BATCH_MAX)

    def gap_tx_id(self, block: int, index: int) -> bytes:
        return self.ledger.get_block(block).transactions[index].tx_id

    def fill_gap(self, gap_key: bytes, block: int, index: int, ns: str, collection: str) -> bool:
        """Apply the write set of a gap if we now hold it; True when the gap is closed."""
        tx = self.ledger.get_block(block).transactions[index]
        hashed = next(
            (c for rw in tx.rwsets if rw.namespace == ns for c in rw.collections if c.collection == collection),
            None,
        )
        c = self.collection(ns, collection)
        if hashed is None or c is None or self.org not in c.member_orgs:
            self.state.write([(gap_key, None)])  # nothing this node should hold any more
            return True
        if c.block_to_live and self.ledger.height > block + c.block_to_live:
            self.state.write([(gap_key, None)])  # expired before it arrived
            return True
        ws = self._stored(lambda: self.state.write_set(tx.tx_id, ns, collection))
        if ws is None or not check_writes(ws, hashed):
            return False
        live_writes = tuple(w for w in ws.writes if self._still_current(ns, collection, w, (block, index)))
        live = WriteSet(ws.tx_id, ws.namespace, ws.collection, live_writes)
        self.state.write([*self.state.apply_ops(live, (block, index), c.block_to_live), (gap_key, None)])
        return True

    def _still_current(self, ns: str, collection: str, write: tuple[str, bytes | None], version: Version) -> bool:
        """Whether a late write is still what the hashed state says (no later write superseded it)."""
        got = self.ledger.get_hashed(ns, collection, key_hash(write[0]))
        if write[1] is None:
            return got is None
        return got is not None and got[1] == version


def _decode(blob: bytes | None) -> WriteSet | None:
    return None if blob is None else WriteSet.decode(blob)
