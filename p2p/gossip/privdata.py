"""Private-data dissemination: blobs go only to peers of the organisations a collection names.

A *collection* is a named set of organisations (from channel configuration, supplied by the node
as a callable so updates apply at once). A blob is bytes keyed by its SHA-256 digest; the ledger
holds only the digest, the bytes travel here.

* **Push.** :meth:`PrivateData.disseminate` stores a blob locally and pushes it to every connected
  peer whose org is in the collection. Nobody else is ever sent the bytes.
* **Pull reconciliation.** Every ``pvt_reconcile_interval_ms`` a node sends one authorised peer
  an inventory (a window of its digests for one collection, advancing a cursor so that large
  collections are covered over successive rounds); the receiver asks for the digests it lacks and
  the holder answers with the blobs. A peer that was offline when a blob was pushed gets it this way.

Requests, inventories and pushes touching a collection either side is not authorised for are
ignored (membership changes make such races legitimate). Blobs are self-certifying: each is
stored under the digest computed here, never under one the sender claims. A blob larger than
:data:`PVT_BLOB_MAX_BYTES` is misbehaviour and raises :class:`RemoteProtocolError`.

Sans-I/O: time passed in, randomness from the injected RNG, storage through ``PrivateStore``.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Mapping

from p2p.errors import RemoteProtocolError
from p2p.gossip.common import PVT_BLOB_MAX_BYTES, PVT_PUSH_BYTES_MAX, GossipConfig, Output, PrivateStore, Send
from p2p.messages import PvtInventory, PvtPush, PvtRequest

__all__ = ["Collections", "PrivateData", "blob_digest"]

log = logging.getLogger(__name__)

# collection name -> the organisations allowed to hold its blobs
Collections = Callable[[], Mapping[str, frozenset[str]]]


def blob_digest(data: bytes) -> bytes:
    """The key of a private blob: plain SHA-256 of its bytes (what the ledger records)."""
    return hashlib.sha256(data).digest()


class PrivateData:
    """Private-data gossip of one node."""

    def __init__(
        self, org: str, store: PrivateStore, collections: Collections, config: GossipConfig, rng: random.Random
    ) -> None:
        self.org = org
        self.store = store
        self._collections = collections
        self._cfg = config
        self._rng = rng
        self._cursor: dict[str, bytes] = {}
        self._next_ms: int | None = None

    def authorised(self, org: str, collection: str) -> bool:
        orgs = self._collections().get(collection)
        return orgs is not None and org in orgs

    def _pushes(self, collection: str, blobs: list[bytes]) -> list[PvtPush]:
        """Blobs split into pushes of at most PVT_PUSH_BYTES_MAX bytes each."""
        out: list[PvtPush] = []
        batch: list[bytes] = []
        size = 0
        for b in blobs:
            if batch and size + len(b) > PVT_PUSH_BYTES_MAX:
                out.append(PvtPush(collection, tuple(batch)))
                batch, size = [], 0
            batch.append(b)
            size += len(b)
        if batch:
            out.append(PvtPush(collection, tuple(batch)))
        return out

    def disseminate(self, collection: str, blob: bytes, peer_orgs: Mapping[str, str]) -> tuple[bytes, list[Output]]:
        """Store ``blob`` and push it to the authorised connected peers; return its digest."""
        if len(blob) > PVT_BLOB_MAX_BYTES:
            raise ValueError(f"blob of {len(blob)} bytes exceeds PVT_BLOB_MAX_BYTES")
        if not self.authorised(self.org, collection):
            raise ValueError(f"our org {self.org!r} is not a member of collection {collection!r}")
        d = blob_digest(blob)
        self.store.put(collection, d, blob)
        targets = sorted(p for p, o in peer_orgs.items() if self.authorised(o, collection))
        return d, [Send(p, PvtPush(collection, (blob,))) for p in targets]

    def on_push(self, peer: str, peer_org: str, msg: PvtPush) -> list[Output]:
        if not (self.authorised(self.org, msg.collection) and self.authorised(peer_org, msg.collection)):
            log.info("ignoring private push for %s from %s: not authorised", msg.collection, peer)
            return []
        for blob in msg.blobs:
            if len(blob) > PVT_BLOB_MAX_BYTES:
                raise RemoteProtocolError(f"private blob of {len(blob)} bytes exceeds the limit")
            d = blob_digest(blob)
            if not self.store.has(d):
                self.store.put(msg.collection, d, blob)
        return []

    def on_inventory(self, peer: str, peer_org: str, msg: PvtInventory) -> list[Output]:
        if not (self.authorised(self.org, msg.collection) and self.authorised(peer_org, msg.collection)):
            return []
        missing = [d for d in msg.digests if not self.store.has(d)]
        return [Send(peer, PvtRequest(msg.collection, tuple(missing)))] if missing else []

    def on_request(self, peer: str, peer_org: str, msg: PvtRequest) -> list[Output]:
        if not (self.authorised(self.org, msg.collection) and self.authorised(peer_org, msg.collection)):
            log.info("refusing private request for %s from %s: not authorised", msg.collection, peer)
            return []
        blobs = [b for b in (self.store.get(d) for d in msg.digests) if b is not None]
        return [Send(peer, p) for p in self._pushes(msg.collection, blobs)]

    def tick(self, now_ms: int, peer_orgs: Mapping[str, str]) -> list[Output]:
        if self._next_ms is not None and now_ms < self._next_ms:
            return []
        self._next_ms = now_ms + self._cfg.pvt_reconcile_interval_ms
        out: list[Output] = []
        for collection in sorted(self._collections()):
            if not self.authorised(self.org, collection):
                continue
            peers = sorted(p for p, o in peer_orgs.items() if self.authorised(o, collection))
            if not peers:
                continue
            after = self._cursor.get(collection, b"")
            digests = self.store.digests(collection, after, self._cfg.pvt_inventory_max)
            # Wrap to the start once the window reaches the end, so every digest is advertised.
            self._cursor[collection] = digests[-1] if len(digests) == self._cfg.pvt_inventory_max else b""
            if digests:
                out.append(Send(self._rng.choice(peers), PvtInventory(collection, tuple(digests))))
        return out
