"""Slicing canonical block bytes into the byte ranges that are hashed, without re-encoding.

A block's canonical encoding is ``[header, [tx...], orderer, signature]`` and a transaction's is
``[proposal, signature, response, rwset, endorsements]``, or with a sixth element ``[rwset...]``
when the contract called others, with ``proposal = [header, ...]`` (see :mod:`storage.model`).
Because the encoding is canonical, the sub-range of the block bytes that holds a transaction *is*
that transaction's canonical encoding, so its Merkle leaf and tx id can be hashed straight from
the slice: no Python object walk, no second ``encode``. This is what keeps the commit path close
to the cost of the raw write.

This module must never accept bytes as a block just because they slice: callers check the
resulting hashes (header hash, Merkle root) against what they expect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack

from crypto.hashing import PendingRoot, Tag, digest_ranges, root_of_ranges
from storage.errors import CorruptionError

__all__ = ["BlockSlices", "CommitSlices", "TxSlice", "commit_slices", "slice_block", "tx_slices"]

_BLOCK_FIELDS = 4
_TX_FIELDS = 5
_TX_FIELDS_WITH_CALLS = 6  # the trailing array of the called contracts' read/write sets
_PROPOSAL_FIELDS = 4


def digest_bytes(tag: bytes, data: memoryview) -> bytes:
    """``sha256(tag ‖ data)`` over a slice, without copying it (crypto.hashing.digest_bytes)."""
    h = hashlib.sha256(tag)
    h.update(data)
    return h.digest()


@dataclass(frozen=True, slots=True)
class BlockSlices:
    """Byte ranges of one encoded block and the hashes computed from them."""

    header_range: tuple[int, int]  # [start, end) of the header's encoding
    header_hash: bytes  # digest(BLOCK_HEADER, header bytes)
    tx_ranges: list[tuple[int, int]]  # [start, end) of each transaction's encoding
    tx_hashes: list[bytes]  # Merkle leaves: digest(TRANSACTION, tx bytes)
    tx_ids: list[bytes]  # digest(PROPOSAL_HEADER, proposal header bytes)
    rwset_ranges: list[tuple[int, int]]  # [start, end) of each transaction's read/write set
    orderer: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class CommitSlices:
    """What a commit needs from a block's bytes: hashes, tx ids and decoded read/write sets."""

    header_hash: bytes
    leaves: PendingRoot  # tx hashes (Merkle leaves), their root, the block's CRC-32: maybe in progress
    tx_ids: list[bytes]
    rwsets: list[Any]  # each rwset as msgpack decodes it (tuples); the committer checks what it uses
    extra_rwsets: dict[int, Any]  # tx index -> its called contracts' rwsets, for the txs that have any

    @property
    def tx_hashes(self) -> list[bytes]:
        return self.leaves.result()[1]

    @property
    def merkle_root(self) -> bytes:
        return self.leaves.root()

    @property
    def crc32(self) -> int:
        """``zlib.crc32`` of the block's bytes (the stored checksum, see storage.blockstore)."""
        return self.leaves.crc32()


_BLOCK_ARRAY = 0x94  # fixarray of 4: the only canonical header of a block
_ID_TAG = hashlib.sha256(Tag.PROPOSAL_HEADER)


def _unpacker(data: bytes) -> Any:
    up = msgpack.Unpacker(max_buffer_size=len(data) + 1, raw=False, use_list=False)
    up.feed(data)
    return up


def _bad(exc: Exception) -> CorruptionError:
    return CorruptionError(f"block bytes do not parse: {type(exc).__name__}: {exc}")


def slice_block(data: bytes) -> BlockSlices:
    """Locate the header and every transaction in ``data``; raise CorruptionError if it is no block."""
    view = memoryview(data)
    up = _unpacker(data)
    try:
        if up.read_array_header() != _BLOCK_FIELDS:
            raise CorruptionError("block: expected an array of 4")
        h0 = up.tell()
        up.skip()
        h1 = up.tell()
        header_hash = digest_bytes(Tag.BLOCK_HEADER, view[h0:h1])
        n = up.read_array_header()
        txs = [_tx_slice(up) for _ in range(n)]
        ranges = [t.tx_range for t in txs]
        rw_ranges = [t.rwset_range for t in txs]
        tx_ids = digest_ranges(Tag.PROPOSAL_HEADER, data, [i for t in txs for i in t.header_range])
        tx_hashes = digest_ranges(Tag.TRANSACTION, data, [i for r in ranges for i in r])
        orderer = up.unpack()
        signature = up.unpack()
        if type(orderer) is not bytes or type(signature) is not bytes:
            raise CorruptionError("block: orderer and signature must be bytes")
        if up.tell() != len(data):
            raise CorruptionError("block: trailing bytes")
    except CorruptionError:
        raise
    except Exception as exc:  # OutOfData, StackError, ValueError: the bytes are not a block
        raise _bad(exc) from exc
    return BlockSlices((h0, h1), header_hash, ranges, tx_hashes, tx_ids, rw_ranges, orderer, signature)


def commit_slices(data: bytes) -> CommitSlices:
    """The commit path's single pass over a block's bytes (the hot loop of every commit): it notes
    where each transaction and its proposal header lie and decodes each read/write set as it is
    passed. Then the Merkle leaves, their root and the block's CRC-32 are computed on a native
    thread (:func:`crypto.hashing.root_of_ranges`; reading them waits) while the tx ids are
    hashed here in one batch call. Same checks on the block's shape as :func:`slice_block`."""
    view = memoryview(data)
    up = _unpacker(data)
    rwsets: list[Any] = []
    extra: dict[int, Any] = {}
    try:
        if up.read_array_header() != _BLOCK_FIELDS:
            raise CorruptionError("block: expected an array of 4")
        h0 = up.tell()
        up.skip()
        a0 = up.tell()
        header_hash = digest_bytes(Tag.BLOCK_HEADER, view[h0:a0])
        n = up.read_array_header()
        if data[0] != _BLOCK_ARRAY or data[a0 : up.tell()] != msgpack.Packer().pack_array_header(n):
            raise CorruptionError("block: non-canonical array header")
        tell, skip, read_arr, unpack = up.tell, up.skip, up.read_array_header, up.unpack
        tx_bounds: list[int] = []
        id_bounds: list[int] = []
        tx_mark, id_mark, rw_append = tx_bounds.append, id_bounds.append, rwsets.append
        for i in range(n):
            tx_mark(tell())
            fields = read_arr()
            if (fields != _TX_FIELDS and fields != _TX_FIELDS_WITH_CALLS) or read_arr() != _PROPOSAL_FIELDS:
                raise CorruptionError("transaction: unexpected shape")
            id_mark(tell())
            skip()  # proposal header: the tx id is its digest
            id_mark(tell())
            skip()  # contract
            skip()  # function
            skip()  # args
            skip()  # creator signature
            skip()  # response
            rw_append(unpack())
            skip()  # endorsements
            if fields == _TX_FIELDS_WITH_CALLS:
                extra[i] = unpack()
            tx_mark(tell())
        t0 = tell()
        orderer, signature = unpack(), unpack()
        if type(orderer) is not bytes or type(signature) is not bytes:
            raise CorruptionError("block: orderer and signature must be bytes")
        # The header and transactions are proven canonical by their hashes; the rest is checked
        # here, so stored bytes always decode with the strict decoder.
        if data[t0:] != msgpack.packb(orderer, use_bin_type=True) + msgpack.packb(signature, use_bin_type=True):
            raise CorruptionError("block: non-canonical or trailing bytes after the transactions")
    except CorruptionError:
        raise
    except Exception as exc:  # OutOfData, StackError, ValueError: the bytes are not a block
        raise _bad(exc) from exc
    leaves = root_of_ranges(Tag.TRANSACTION, data, tx_bounds, crc32=True)  # on another core, where it can
    tx_ids = digest_ranges(Tag.PROPOSAL_HEADER, data, id_bounds)
    return CommitSlices(header_hash, leaves, tx_ids, rwsets, extra)


@dataclass(frozen=True, slots=True)
class TxSlice:
    """Where one transaction of an encoded block lies, found without hashing the others."""

    tx_range: tuple[int, int]
    header_range: tuple[int, int]  # its proposal header: the tx id is the digest of these bytes
    rwset_range: tuple[int, int]
    extra_range: tuple[int, int] | None = None  # the called contracts' rwsets, where there are any

    def tx_id(self, data: bytes) -> bytes:
        h = _ID_TAG.copy()
        h.update(memoryview(data)[self.header_range[0] : self.header_range[1]])
        return h.digest()


def tx_slices(data: bytes, only: int | None = None) -> list[TxSlice]:
    """Where each transaction of an encoded block lies, found in one pass without hashing; point
    reads keep the list with the block's bytes so that each later read is a slice. With ``only``,
    just that transaction, skipping the ones before it whole (a block's first read needs one).
    CorruptionError if the bytes do not hold a block's transactions (or no transaction ``only``)."""
    up = _unpacker(data)
    try:
        if up.read_array_header() != _BLOCK_FIELDS:
            raise CorruptionError("block: expected an array of 4")
        up.skip()
        n = up.read_array_header()
        if only is None:
            return [_tx_slice(up) for _ in range(n)]
        if not 0 <= only < n:
            raise CorruptionError(f"block holds {n} transactions, not {only + 1}")
        skip = up.skip
        for _ in range(only):
            skip()
        return [_tx_slice(up)]
    except CorruptionError:
        raise
    except Exception as exc:  # OutOfData, StackError, ValueError: the bytes are not a block
        raise _bad(exc) from exc


def _tx_slice(up: Any) -> TxSlice:
    tell, skip = up.tell, up.skip
    start = tell()
    fields = up.read_array_header()
    if fields not in (_TX_FIELDS, _TX_FIELDS_WITH_CALLS) or up.read_array_header() != _PROPOSAL_FIELDS:
        raise CorruptionError("transaction: unexpected shape")
    p0 = tell()
    skip()
    p1 = tell()
    for _ in range(5):  # contract, function, args, creator signature, response
        skip()
    r0 = tell()
    skip()
    r1 = tell()
    skip()  # endorsements
    extra = None
    if fields == _TX_FIELDS_WITH_CALLS:
        e0 = tell()
        skip()
        extra = (e0, tell())
    return TxSlice((start, tell()), (p0, p1), (r0, r1), extra)
