"""A channel's private data on one node: transient write sets, private state, purge and gaps.

Keyspaces (under the channel prefix; layout in docs/storage.md, "Private data"):

* ``x`` digest -> write-set blob. A *write-set blob* is the canonical encoding of
  ``[tx_id, namespace, collection, [[key, value|nil], ...]]``; its digest is its plain SHA-256
  (what private-data gossip names it by). Kept from endorsement (or receipt from a peer) until
  the data is purged, so member peers that missed it can pull it.
* ``z`` (tx id, namespace, collection) -> digest: how the committer finds a transaction's blob.
* ``w`` (namespace, collection, digest) -> "": the blobs of one collection, for gossip inventories.
* ``v`` (expiry height, digest) -> "": blobs of transactions that may never commit; dropped at
  that height unless their transaction committed VALID (then ``e`` owns them).
* ``q`` (namespace, collection, key) -> version ‖ value: the private state (members only).
* ``e`` (expiry height, kind, ...) -> "": the block-to-live schedule of private keys (kind ``k``),
  write-set blobs (``d``) and HTTP blobs (``b``).
* ``g`` (block, tx index, namespace, collection) -> "": private data of a VALID transaction this
  node should hold but has not received; reconciliation fills it later.
* ``f`` digest -> canonical ``[namespace, collection, size, expiry height]``: a blob of the blob
  store (its bytes are files, see :mod:`storage.blobstore`) and the collection it belongs to;
  expiry 0 means kept forever, otherwise ``e`` purges it at that height.

Nothing here writes on its own: methods return the puts and deletes (value ``None``) that the
caller adds to the block's atomic batch (``ChannelLedger.stage(extra=...)``), except the transient
store's ``put_transient`` which is one small synchronous batch of its own.

This module must never return private data whose hashes it has not checked against the ledger's
hashed writes (that check is :func:`check_writes`'), and never reads the clock.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from crypto.encoding import EncodingError, decode, encode
from crypto.hashing import Tag, digest
from storage import keys
from storage.errors import CorruptionError
from storage.model import CollectionHashes, Version

__all__ = [
    "TRANSIENT_RETENTION_BLOCKS",
    "PrivateState",
    "WriteSet",
    "check_writes",
    "key_hash",
    "value_hash",
]

# Blocks a write set whose transaction never commits is kept (Fabric's transient store keeps
# them for 1000 blocks): long enough to cover a slow ordering, short enough that abandoned
# proposals do not pile up.
TRANSIENT_RETENTION_BLOCKS = 1000

_U64 = struct.Struct(">Q")
_TXI = struct.Struct(">QI")
BLOB_KIND = b"b"
_KEY_KIND = b"k"
_DIGEST_KIND = b"d"

BLOB_META = b"f"

Op = tuple[bytes, bytes | None]


def key_hash(key: str) -> bytes:
    return digest(Tag.PVT_KEY, key)


def value_hash(value: bytes) -> bytes:
    return digest(Tag.PVT_VALUE, value)


@dataclass(frozen=True, slots=True)
class WriteSet:
    """The plaintext private writes of one transaction in one collection."""

    tx_id: bytes
    namespace: str
    collection: str
    writes: tuple[tuple[str, bytes | None], ...]

    def encode(self) -> bytes:
        return encode([self.tx_id, self.namespace, self.collection, [list(w) for w in self.writes]])

    @classmethod
    def decode(cls, blob: bytes) -> WriteSet:
        """Strict: CorruptionError unless ``blob`` is a canonical write-set blob."""
        try:
            tx_id, ns, coll, writes = decode(blob)
            ws = tuple((k, v) for k, v in writes)
        except (EncodingError, ValueError, TypeError) as exc:
            raise CorruptionError(f"not a private write set: {exc}") from exc
        if type(tx_id) is not bytes or type(ns) is not str or type(coll) is not str:
            raise CorruptionError("private write set: bad header")
        if not all(type(k) is str and (v is None or type(v) is bytes) for k, v in ws):
            raise CorruptionError("private write set: bad writes")
        return cls(tx_id, ns, coll, ws)

    def hashes(self) -> tuple[tuple[bytes, bytes | None], ...]:
        return tuple(sorted((key_hash(k), None if v is None else value_hash(v)) for k, v in self.writes))


def check_writes(ws: WriteSet, hashed: CollectionHashes) -> bool:
    """True when ``ws`` is exactly the plaintext of ``hashed``'s writes."""
    return ws.hashes() == tuple(sorted((w.key_hash, w.value_hash) for w in hashed.writes))


class PrivateState:
    """Private data of one channel in the node's database (``cp``: the channel prefix)."""

    def __init__(self, raw: Any, cp: bytes) -> None:
        self._raw = raw
        self._cp = cp

    # -- transient write sets --------------------------------------------------------------------

    def _coll(self, ns: str, collection: str) -> bytes:
        return keys.coll_bytes(ns, collection)

    def put_transient(self, ws: WriteSet, height: int) -> bytes:
        """Keep a write set (from our endorsement or a member peer); return its digest."""
        blob = ws.encode()
        d = hashlib.sha256(blob).digest()
        cp, cb = self._cp, self._coll(ws.namespace, ws.collection)
        with self._raw.write_batch(sync=True) as b:
            b.put(cp + keys.TRANSIENT + d, blob)
            b.put(cp + keys.TRANSIENT_INDEX + ws.tx_id + cb, d)
            b.put(cp + b"w" + cb + d, b"")
            b.put(cp + b"v" + _U64.pack(height + TRANSIENT_RETENTION_BLOCKS) + d, b"")
        return d

    def get_blob(self, d: bytes) -> bytes | None:
        return self._raw.get(self._cp + keys.TRANSIENT + d)

    def write_set(self, tx_id: bytes, ns: str, collection: str) -> WriteSet | None:
        d = self._raw.get(self._cp + keys.TRANSIENT_INDEX + tx_id + self._coll(ns, collection))
        blob = None if d is None else self.get_blob(d)
        return None if blob is None else WriteSet.decode(blob)

    def digests(self, ns: str, collection: str, after: bytes, limit: int) -> list[bytes]:
        prefix = self._cp + b"w" + self._coll(ns, collection)
        out: list[bytes] = []
        start = prefix + after + b"\x00" if after else prefix
        with self._raw.iterator(start=start, stop=keys.prefix_end(prefix), include_value=False) as it:
            for k in it:
                out.append(k[len(prefix) :])
                if len(out) >= limit:
                    break
        return out

    def _drop_blob_ops(self, d: bytes) -> list[Op]:
        blob = self.get_blob(d)
        if blob is None:
            return []
        try:
            ws = WriteSet.decode(blob)
        except CorruptionError:
            return [(self._cp + keys.TRANSIENT + d, None)]
        cb = self._coll(ws.namespace, ws.collection)
        return [
            (self._cp + keys.TRANSIENT + d, None),
            (self._cp + keys.TRANSIENT_INDEX + ws.tx_id + cb, None),
            (self._cp + b"w" + cb + d, None),
        ]

    # -- private state ---------------------------------------------------------------------------

    def get_private(self, ns: str, collection: str, key: str) -> tuple[bytes, Version] | None:
        raw = self._raw.get(keys.private_key(self._cp, ns, collection, key))
        if raw is None:
            return None
        return raw[keys.VERSION_LEN :], keys.unpack_version(raw)

    def apply_ops(self, ws: WriteSet, version: Version, block_to_live: int) -> list[Op]:
        """Puts that apply ``ws`` at ``version`` and schedule its purge after ``block_to_live``."""
        ver = keys.pack_version(*version)
        ops: list[Op] = []
        for k, v in ws.writes:
            pk = keys.private_key(self._cp, ws.namespace, ws.collection, k)
            ops.append((pk, None if v is None else ver + v))
            if block_to_live and v is not None:
                ops.append((self._purge_key(version[0] + block_to_live, _KEY_KIND + ver + pk), b""))
        if block_to_live:
            d = hashlib.sha256(ws.encode()).digest()
            ops.append((self._purge_key(version[0] + block_to_live, _DIGEST_KIND + d), b""))
        return ops

    def _purge_key(self, expiry: int, payload: bytes) -> bytes:
        return self._cp + keys.PURGE + _U64.pack(expiry) + payload

    def schedule_blob_purge(self, blob_digest: bytes, expiry: int) -> Op:
        """The schedule entry that purges an HTTP blob once the height reaches ``expiry``."""
        return (self._purge_key(expiry, BLOB_KIND + blob_digest), b"")

    def purge_ops(self, height: int) -> tuple[list[Op], list[bytes]]:
        """Ops that purge everything due at ``height`` (private keys still at the scheduled version,
        write-set blobs, expired uncommitted blobs), and the HTTP blob digests now due."""
        ops: list[Op] = []
        blobs: list[bytes] = []
        for k, payload in self._due(keys.PURGE, height):
            ops.append((k, None))
            kind, rest = payload[:1], payload[1:]
            if kind == _KEY_KIND:
                ver, pk = rest[: keys.VERSION_LEN], rest[keys.VERSION_LEN :]
                cur = self._raw.get(pk)
                if cur is not None and cur[: keys.VERSION_LEN] == ver:  # not overwritten since
                    ops.append((pk, None))
            elif kind == _DIGEST_KIND:
                ops += self._drop_blob_ops(rest)
            elif kind == BLOB_KIND:
                blobs.append(rest)
                ops.append((self._cp + BLOB_META + rest, None))
        return ops, blobs

    def expired_transient(self, height: int) -> Iterator[tuple[bytes, bytes]]:
        """(schedule key, digest) of uncommitted write sets due at ``height``."""
        yield from self._due(b"v", height)

    def drop_transient_ops(self, schedule_key: bytes, d: bytes) -> list[Op]:
        return [(schedule_key, None), *self._drop_blob_ops(d)]

    def _due(self, space: bytes, height: int) -> Iterator[tuple[bytes, bytes]]:
        prefix = self._cp + space
        stop = prefix + _U64.pack(height + 1)
        with self._raw.iterator(start=prefix, stop=stop, include_value=False) as it:
            for k in it:
                yield k, k[len(prefix) + _U64.size :]

    # -- HTTP blobs ------------------------------------------------------------------------------

    def blob_meta(self, d: bytes) -> tuple[str, str, int, int] | None:
        """(namespace, collection, size, expiry height) of a stored blob, or None."""
        raw = self._raw.get(self._cp + BLOB_META + d)
        if raw is None:
            return None
        try:
            ns, coll, size, expiry = decode(raw)
        except (EncodingError, ValueError, TypeError) as exc:
            raise CorruptionError(f"blob record of {d.hex()} does not decode: {exc}") from exc
        return ns, coll, size, expiry

    def register_blob(self, d: bytes, ns: str, collection: str, size: int, expiry: int) -> None:
        """Record a blob's collection (and its purge at ``expiry`` unless 0) in one batch."""
        ops: list[Op] = [(self._cp + BLOB_META + d, encode([ns, collection, size, expiry]))]
        if expiry:
            ops.append(self.schedule_blob_purge(d, expiry))
        self.write(ops)

    def blob_digests(self) -> set[bytes]:
        prefix = self._cp + BLOB_META
        with self._raw.iterator(prefix=prefix, include_value=False) as it:
            return {k[len(prefix) :] for k in it}

    # -- gaps ------------------------------------------------------------------------------------

    def missing_op(self, block: int, index: int, ns: str, collection: str) -> Op:
        return (self._cp + keys.MISSING + _TXI.pack(block, index) + self._coll(ns, collection), b"")

    def has_gap(self, block: int, index: int, ns: str, collection: str) -> bool:
        return self._raw.get(self.missing_op(block, index, ns, collection)[0]) is not None

    def missing(self, limit: int) -> list[tuple[bytes, int, int, str, str]]:
        """Up to ``limit`` recorded gaps: (gap key, block, tx index, namespace, collection)."""
        prefix = self._cp + keys.MISSING
        out = []
        with self._raw.iterator(prefix=prefix, include_value=False) as it:
            for k in it:
                rest = k[len(prefix) :]
                b, i = _TXI.unpack_from(rest)
                ns, coll = _split_coll(rest[_TXI.size :])
                out.append((k, b, i, ns, coll))
                if len(out) >= limit:
                    break
        return out

    def write(self, ops: Sequence[Op]) -> None:
        """Write ``ops`` in one synchronous batch (reconciliation, outside a block commit)."""
        with self._raw.write_batch(sync=True) as b:
            for k, v in ops:
                if v is None:
                    b.delete(k)
                else:
                    b.put(k, v)


def _split_coll(raw: bytes) -> tuple[str, str]:
    n = int.from_bytes(raw[:2], "big")
    ns = raw[2 : 2 + n].decode("utf-8")
    rest = raw[2 + n :]
    m = int.from_bytes(rest[:2], "big")
    return ns, rest[2 : 2 + m].decode("utf-8")
