"""Reading a channel's blocks, validation codes and transaction index, with every read checked.

A stored block is its canonical encoding as committed, with its CRC-32 under a key of its own
(see :mod:`storage.keys`). The CRC is checked on every read from disk; a mismatch, or bytes that
do not parse as a block, raise :class:`CorruptionError`: corrupt data is never returned.
Verified block bytes are kept in a small LRU (``BLOCK_BYTES_CACHE_MAX``) because transaction,
history and proof reads tend to hit the same recent blocks; with them, once a point read has
needed it, where each transaction lies, so the next read of that block is a slice.

Writes are not done here: :class:`storage.ledger.ChannelLedger` builds the one write batch of a
commit. This module must never write to the database.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgpack

from crypto.encoding import EncodingError, decode
from crypto.hashing import crc32
from crypto.merkle import merkle_proof, verify_proof
from storage import keys
from storage.codec import BlockSlices, TxSlice, slice_block, tx_slices
from storage.errors import CorruptionError, NotFound
from storage.model import Block, BlockHeader, Transaction, ValidationCode

__all__ = [
    "BLOCK_BYTES_CACHE_MAX",
    "BlockStore",
    "BlockSummary",
    "TxProof",
    "TxRecord",
    "pack_crc",
    "verify_tx_proof",
]

_CRC = struct.Struct(">I")
CRC_LEN = _CRC.size
# Verified block bytes kept in memory: 8 blocks is a few MB at typical sizes (a full 500-tx block is
# about 0.7 MB) and covers the recent blocks that readers and proofs ask for again and again.
BLOCK_BYTES_CACHE_MAX = 8
_CODES = frozenset(int(c) for c in ValidationCode)


def pack_crc(crc: int) -> bytes:
    """The stored checksum of a block's bytes: ``u32 zlib.crc32(block bytes)``. It is kept under
    its own key rather than prefixed to the block, so a commit never builds a second copy of a
    multi-MB block; the commit computes it on another core (storage.codec.commit_slices)."""
    return _CRC.pack(crc)


@dataclass(frozen=True, slots=True)
class TxRecord:
    tx: Transaction
    block_number: int
    tx_index: int
    code: ValidationCode


@dataclass(frozen=True, slots=True)
class BlockSummary:
    """A block without its transactions' contents: what explorers and clients tracking commits
    read. Read from the stored bytes by slicing, at a fraction of the cost of decoding the block."""

    header: BlockHeader
    hash: bytes
    tx_ids: list[bytes]
    orderer: bytes
    signature: bytes

    @classmethod
    def of(cls, block: Block) -> BlockSummary:
        return cls(block.header, block.hash(), [t.tx_id for t in block.transactions], block.orderer, block.signature)


@dataclass(frozen=True, slots=True)
class TxProof:
    """That the transaction hashing to ``tx_hash`` is leaf ``index`` of ``size`` under ``header``."""

    header: BlockHeader
    tx_hash: bytes
    index: int
    size: int
    path: list[bytes]


def verify_tx_proof(proof: TxProof, expected_block_hash: bytes | None = None) -> bool:
    """Check a :class:`TxProof` with nothing but hashing: the RFC 6962 audit path against the
    header's Merkle root, and, when given, the header's hash against the block hash one trusts."""
    try:
        if expected_block_hash is not None and proof.header.hash() != expected_block_hash:
            return False
    except EncodingError:
        return False
    return verify_proof(proof.tx_hash, proof.index, proof.size, proof.path, proof.header.data_hash)


class BlockStore:
    """Checked reads of one channel's blocks and indices (``cp`` is the channel prefix)."""

    def __init__(self, raw: Any, cp: bytes) -> None:
        self._raw = raw
        self._cp = cp
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        # For blocks in _cache that a point read has walked: where every transaction lies, or
        # None after the first read (which walked only up to its transaction).
        self._tx_slices: dict[int, list[TxSlice] | None] = {}
        self._lock = threading.Lock()  # readers may run in executor threads beside a commit

    # -- blocks ---------------------------------------------------------------------------------

    def block_bytes(self, number: int) -> bytes:
        """The canonical bytes of block ``number``, CRC-checked; NotFound if absent."""
        with self._lock:
            cached = self._cache.get(number)
            if cached is not None:
                self._cache.move_to_end(number)
                return cached
        data = self._raw.get(keys.block_key(self._cp, number), verify_checksums=True)
        if data is None:
            raise NotFound(f"block {number} is not stored")
        crc = self._raw.get(keys.crc_key(self._cp, number), verify_checksums=True)
        if crc is None or len(crc) != CRC_LEN:
            raise CorruptionError(f"block {number}: checksum entry missing or malformed", height=number)
        if _CRC.unpack(crc)[0] != crc32(data):
            raise CorruptionError(f"block {number}: checksum mismatch", height=number)
        with self._lock:
            self._cache[number] = data
            if len(self._cache) > BLOCK_BYTES_CACHE_MAX:
                old, _ = self._cache.popitem(last=False)
                self._tx_slices.pop(old, None)
        return data

    def forget(self, number: int) -> None:
        with self._lock:
            self._cache.pop(number, None)
            self._tx_slices.pop(number, None)

    def slices(self, number: int) -> tuple[bytes, BlockSlices]:
        data = self.block_bytes(number)
        try:
            return data, slice_block(data)
        except CorruptionError as exc:
            raise CorruptionError(f"block {number}: {exc}", height=number) from exc

    def block(self, number: int) -> Block:
        data = self.block_bytes(number)
        try:
            block = Block.decode(data)
        except EncodingError as exc:
            raise CorruptionError(f"block {number} does not decode: {exc}", height=number) from exc
        if block.number != number:
            raise CorruptionError(f"block {number} holds header number {block.number}", height=number)
        return block

    def header(self, number: int) -> BlockHeader:
        data, sl = self.slices(number)
        return stored_header(data, sl, number)

    def summary(self, number: int) -> BlockSummary:
        data, sl = self.slices(number)
        return BlockSummary(stored_header(data, sl, number), sl.header_hash, sl.tx_ids, sl.orderer, sl.signature)

    def number_of_hash(self, header_hash: bytes) -> int:
        raw = self._raw.get(keys.hash_key(self._cp, header_hash))
        if raw is None:
            raise NotFound(f"no block with hash {header_hash.hex()}")
        if len(raw) != 8:
            raise CorruptionError(f"hash index entry of {len(raw)} bytes")
        return int(keys.U64.unpack(raw)[0])

    def codes(self, number: int) -> list[ValidationCode]:
        raw = self._raw.get(keys.codes_key(self._cp, number), verify_checksums=True)
        if raw is None:
            raise NotFound(f"no validation codes for block {number}")
        if not all(c in _CODES for c in raw):
            raise CorruptionError(f"block {number}: unknown validation code stored", height=number)
        return [ValidationCode(c) for c in raw]

    # -- transactions ---------------------------------------------------------------------------

    def tx_location(self, tx_id: bytes) -> tuple[int, int, ValidationCode] | None:
        raw = self._raw.get(keys.tx_key(self._cp, tx_id))
        if raw is None:
            return None
        b, i, c = keys.unpack_loc(raw)
        if c not in _CODES:
            raise CorruptionError(f"tx index of {tx_id.hex()}: unknown code {c}", height=b)
        return (b, i, ValidationCode(c))

    def locate(self, number: int, index: int) -> tuple[bytes, TxSlice]:
        """Block ``number``'s bytes and where its transaction ``index`` lies. The first read of a
        cached block walks only up to that transaction (reads spread over many blocks mostly read
        each once); a second read finds where every transaction lies, kept with the bytes."""
        data = self.block_bytes(number)
        with self._lock:
            first = number not in self._tx_slices
            known = None if first else self._tx_slices[number]
            if first and number in self._cache:
                self._tx_slices[number] = None
        try:
            if first:
                return data, tx_slices(data, index)[0]
            if known is None:
                known = tx_slices(data)
                with self._lock:
                    if number in self._cache:
                        self._tx_slices[number] = known
        except CorruptionError as exc:
            raise CorruptionError(f"block {number} tx {index}: {exc}", height=number) from exc
        if not 0 <= index < len(known):
            raise CorruptionError(f"block {number} holds {len(known)} transactions, not {index + 1}", height=number)
        return data, known[index]

    def get_tx(self, tx_id: bytes) -> TxRecord:
        loc = self.tx_location(tx_id)
        if loc is None:
            raise NotFound(f"transaction {tx_id.hex()} is not stored")
        b, i, code = loc
        data, ts = self.locate(b, i)
        if ts.tx_id(data) != tx_id:
            raise CorruptionError(f"tx index of {tx_id.hex()} points at another transaction", height=b)
        try:
            tx = Transaction.decode(data[ts.tx_range[0] : ts.tx_range[1]])
        except EncodingError as exc:
            raise CorruptionError(f"block {b} tx {i} does not decode: {exc}", height=b) from exc
        return TxRecord(tx, b, i, code)

    def rwset_writes(self, number: int, index: int, ns: str) -> tuple[tuple[str, bytes | None], ...] | None:
        """The writes in namespace ``ns`` of transaction ``index`` of block ``number``, from its
        bytes; None when the transaction has no read/write set in ``ns``."""
        data, ts = self.locate(number, index)
        s, e = ts.rwset_range
        try:
            rwsets = [msgpack.unpackb(data[s:e], raw=False, use_list=False)]
            if ts.extra_range is not None:
                rwsets.extend(msgpack.unpackb(data[ts.extra_range[0] : ts.extra_range[1]], raw=False, use_list=False))
            for rw_ns, _reads, writes, *_rest in rwsets:
                if rw_ns == ns:
                    return writes
        except Exception as exc:  # ValueError, ExtraData, TypeError on a damaged rwset
            raise CorruptionError(f"block {number} tx {index}: rwset does not parse", height=number) from exc
        return None

    def tx_proof(self, tx_id: bytes) -> TxProof:
        loc = self.tx_location(tx_id)
        if loc is None:
            raise NotFound(f"transaction {tx_id.hex()} is not stored")
        b, i, _ = loc
        header = self.header(b)
        _, sl = self.slices(b)
        if not 0 <= i < len(sl.tx_hashes) or sl.tx_ids[i] != tx_id:
            raise CorruptionError(f"tx index of {tx_id.hex()} points at another transaction", height=b)
        return TxProof(header, sl.tx_hashes[i], i, len(sl.tx_hashes), merkle_proof(sl.tx_hashes, i))


def stored_header(data: bytes, sl: BlockSlices, number: int) -> BlockHeader:
    """Decode the header of stored block ``number``; CorruptionError unless it decodes and says ``number``."""
    h0, h1 = sl.header_range
    try:
        header = BlockHeader.from_obj(decode(data[h0:h1]))
    except EncodingError as exc:
        raise CorruptionError(f"block {number}: header does not decode: {exc}", height=number) from exc
    if header.number != number:
        raise CorruptionError(f"block {number} holds header number {header.number}", height=number)
    return header
