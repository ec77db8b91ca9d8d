"""Checking a stored chain: the open-time reconciliation and the full ``verify_chain`` walk.

Recovery (on every open, cheap): the height marker is authoritative because a block and its
marker are written in the same atomic batch. We check that the marker parses, that the tip block
is stored, intact (CRC), decodes strictly, carries the right number and channel, hashes to the marker's tip
hash, is in the hash index, has one validation code per transaction, and has its transactions
indexed; and that no block, codes or marker exist without the others (a block stored beyond the
marker, or blocks with no marker). Any mismatch raises :class:`CorruptionError`: there is no state
in which a partial commit could be repaired, so a mismatch means the disk or someone else changed
the data.

Verification (on demand, every block from ``start``): everything recovery checks for the tip, for
every block, plus the hash links, the Merkle roots, and (given a key resolver) the orderer's
signature over each header hash.

This module must never write to the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crypto.encoding import EncodingError
from crypto.merkle import merkle_root
from crypto.signing import PublicKey, get_backend
from storage import keys
from storage.blockstore import BlockStore, stored_header
from storage.codec import BlockSlices
from storage.errors import ChainError, CorruptionError, NotFound, StorageError
from storage.model import GENESIS_PREVIOUS_HASH, Block, BlockHeader, ValidationCode

__all__ = ["KeyResolver", "recover", "verify_range"]

# Resolves an orderer's certificate (DER) to its public key; None when it is not a known orderer.
KeyResolver = Callable[[bytes], PublicKey | None]


def _header(data: bytes, sl: BlockSlices, number: int, channel: str) -> BlockHeader:
    header = stored_header(data, sl, number)
    if header.channel != channel:
        raise CorruptionError(f"block {number}: header is for channel {header.channel!r}", height=number)
    return header


def _check_indices(raw: Any, cp: bytes, blocks: BlockStore, number: int, sl: BlockSlices) -> None:
    """Hash index, validation codes and tx-id index of one block agree with its bytes."""
    if raw.get(keys.hash_key(cp, sl.header_hash)) != keys.U64.pack(number):
        raise CorruptionError(f"block {number}: hash index entry missing or wrong", height=number)
    try:
        codes = blocks.codes(number)
    except NotFound as exc:
        raise CorruptionError(f"block {number}: validation codes missing", height=number) from exc
    if len(codes) != len(sl.tx_ids):
        raise CorruptionError(f"block {number}: {len(codes)} codes for {len(sl.tx_ids)} txs", height=number)
    for i, tx_id in enumerate(sl.tx_ids):
        loc = blocks.tx_location(tx_id)
        if loc is None:
            if codes[i] == ValidationCode.DUPLICATE_TXID:  # not indexed by design
                continue
            raise CorruptionError(f"block {number} tx {i}: tx id not indexed", height=number)
        b, j, code = loc
        if (b, j) == (number, i):
            if code != codes[i]:
                raise CorruptionError(f"block {number} tx {i}: indexed code differs from block codes", height=number)
        elif (b, j) > (number, i):
            raise CorruptionError(f"block {number} tx {i}: tx id indexed at a later position {b}/{j}", height=number)


def recover(raw: Any, cp: bytes, blocks: BlockStore, channel: str) -> tuple[int, bytes | None]:
    """Reconcile the ledger with the disk on open; return (height, tip hash)."""
    marker = raw.get(keys.meta_key(cp), verify_checksums=True)
    if marker is None:
        for key in (keys.block_key(cp, 0), keys.crc_key(cp, 0), keys.codes_key(cp, 0)):
            if raw.get(key) is not None:
                raise CorruptionError("block 0 is stored but there is no height marker", height=0)
        return 0, None
    height, tip = keys.unpack_height(marker)
    if height == 0:
        raise CorruptionError("height marker says 0 blocks")
    n = height - 1
    try:
        data, sl = blocks.slices(n)
    except NotFound as exc:
        raise CorruptionError(f"height marker says {height} but block {n} is missing", height=n) from exc
    _header(data, sl, n, channel)
    try:
        Block.decode(data)  # the tip decodes with the strict decoder, as every read will need
    except EncodingError as exc:
        raise CorruptionError(f"block {n} does not decode: {exc}", height=n) from exc
    if sl.header_hash != tip:
        raise CorruptionError(f"block {n} does not hash to the marker's tip hash", height=n)
    _check_indices(raw, cp, blocks, n, sl)
    for key in (keys.block_key(cp, height), keys.crc_key(cp, height), keys.codes_key(cp, height)):
        if raw.get(key) is not None:
            raise CorruptionError(f"data for block {height} is stored beyond the height marker", height=height)
    return height, tip


def verify_range(
    raw: Any,
    cp: bytes,
    blocks: BlockStore,
    channel: str,
    height: int,
    tip: bytes | None,
    resolver: KeyResolver | None,
    start: int,
) -> None:
    """Verify blocks ``start..height-1``; raise naming the first bad height."""
    if not 0 <= start <= height:
        raise StorageError(f"start {start} outside 0..{height}")
    prev = GENESIS_PREVIOUS_HASH
    if start > 0:
        data, sl = blocks.slices(start - 1)
        prev = sl.header_hash
    backend = get_backend()
    for n in range(start, height):
        blocks.forget(n)  # re-read from disk: a cached copy would hide damage
        try:
            data, sl = blocks.slices(n)
        except NotFound as exc:
            raise CorruptionError(f"block {n} is missing", height=n) from exc
        header = _header(data, sl, n, channel)
        if header.previous_hash != prev:
            raise ChainError(f"block {n}: previous hash does not match block {n - 1}", height=n)
        if merkle_root(sl.tx_hashes) != header.data_hash:
            raise ChainError(f"block {n}: data hash is not the Merkle root of its transactions", height=n)
        _check_indices(raw, cp, blocks, n, sl)
        if resolver is not None:
            key = resolver(sl.orderer)
            if key is None:
                raise ChainError(f"block {n}: signed by an unknown orderer", height=n)
            if not backend.verify(key, sl.signature, sl.header_hash):
                raise ChainError(f"block {n}: orderer signature does not verify", height=n)
        prev = sl.header_hash
    if height > 0 and prev != tip and start < height:
        raise CorruptionError(f"block {height - 1} does not hash to the marker's tip hash", height=height - 1)
