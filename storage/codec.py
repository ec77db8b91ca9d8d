"""Slicing canonical block bytes into the byte ranges that are hashed, without re-encoding.

A block's canonical encoding is ``[header, [tx...], orderer, signature]`` and a transaction's is
``[proposal, signature, response, rwset, endorsements]`` with ``proposal = [header, ...]`` (see
:mod:`storage.model`). Because the encoding is canonical, the sub-range of the block bytes that
holds a transaction *is* that transaction's canonical encoding, so its Merkle leaf and tx id can be
hashed straight from the slice: no Python object walk, no second ``encode``. This is what keeps
the commit path close to the cost of the raw write.

This module must never accept bytes as a block just because they slice: callers check the
resulting hashes (header hash, Merkle root) against what they expect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgpack

from crypto.hashing import Tag
from storage.errors import CorruptionError

__all__ = ["BlockSlices", "slice_block"]

_BLOCK_FIELDS = 4
_TX_FIELDS = 5
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


def slice_block(data: bytes) -> BlockSlices:
    """Locate the header and every transaction in ``data``; raise CorruptionError if it is no block."""
    view = memoryview(data)
    up = msgpack.Unpacker(max_buffer_size=len(data) + 1)
    up.feed(data)
    try:
        if up.read_array_header() != _BLOCK_FIELDS:
            raise CorruptionError("block: expected an array of 4")
        h0 = up.tell()
        up.skip()
        h1 = up.tell()
        header_hash = digest_bytes(Tag.BLOCK_HEADER, view[h0:h1])
        n = up.read_array_header()
        ranges: list[tuple[int, int]] = []
        tx_hashes: list[bytes] = []
        tx_ids: list[bytes] = []
        rw_ranges: list[tuple[int, int]] = []
        tell, skip, read_arr = up.tell, up.skip, up.read_array_header
        for _ in range(n):
            start = tell()
            if read_arr() != _TX_FIELDS or read_arr() != _PROPOSAL_FIELDS:
                raise CorruptionError("transaction: unexpected shape")
            p0 = tell()
            skip()
            tx_ids.append(digest_bytes(Tag.PROPOSAL_HEADER, view[p0 : tell()]))
            for _ in range(_PROPOSAL_FIELDS - 1 + 2):  # rest of the proposal, signature, response
                skip()
            r0 = tell()
            skip()
            rw_ranges.append((r0, tell()))
            skip()  # endorsements
            end = tell()
            ranges.append((start, end))
            tx_hashes.append(digest_bytes(Tag.TRANSACTION, view[start:end]))
        orderer = up.unpack()
        signature = up.unpack()
        if type(orderer) is not bytes or type(signature) is not bytes:
            raise CorruptionError("block: orderer and signature must be bytes")
        if up.tell() != len(data):
            raise CorruptionError("block: trailing bytes")
    except CorruptionError:
        raise
    except Exception as exc:  # OutOfData, StackError, ValueError: the bytes are not a block
        raise CorruptionError(f"block bytes do not parse: {type(exc).__name__}: {exc}") from exc
    return BlockSlices((h0, h1), header_hash, ranges, tx_hashes, tx_ids, rw_ranges, orderer, signature)
