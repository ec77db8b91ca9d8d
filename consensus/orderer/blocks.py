"""Block assembly and signing on the ordering leader, and the cheap block parsing Raft apply needs.

A block's canonical bytes are ``encode(Block.to_obj())``: a 4-array of the header array, the
array of transaction arrays, the orderer's certificate and its signature. Transactions arrive as
canonical bytes already (admitted by :func:`.txcheck.inspect_tx`), and the encoding of an array
is its header followed by its elements' encodings, so :func:`assemble_block` concatenates::

    0x94 ‖ encode(header) ‖ array-header(n) ‖ tx_0 ‖ … ‖ tx_{n-1} ‖ encode(orderer) ‖ encode(sig)

with no per-transaction decoding or re-encoding; the unit tests check the bytes equal
``Block(...).encode()``. The Merkle root is RFC 6962's over ``digest_bytes(Tag.TRANSACTION,
tx_bytes)`` (equal to ``Transaction.hash()``, so equal to ``crypto.merkle.merkle_root`` of the
block's tx hashes), and the orderer signs ``header.hash()``. The leaf level (``SHA-256(0x00 ‖
tx hash)``) was computed when each transaction was admitted (:class:`.txcheck.TxInfo`), so
assembly hashes only the interior nodes, about one hash per transaction.

:func:`read_header` and :func:`block_tx_ids` read a block back without building transaction
objects: what a follower needs to check chain continuity, and a new leader to learn tx ids.

This module must never read the clock (the leader passes the timestamp in) and never decide
whether a block belongs to the chain (that is the service's apply step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgpack

from consensus.orderer.txcheck import TxInfo
from crypto.encoding import EncodingError, encode
from crypto.hashing import Tag, digest_bytes
from crypto.merkle import root_of_leaf_hashes
from crypto.signing import PrivateKey, PublicKey, get_backend
from storage.model import BLOCK_VERSION, BlockHeader, MalformedError

__all__ = [
    "AssembledBlock",
    "BlockSigner",
    "ParsedBlock",
    "array_header",
    "assemble_block",
    "block_tx_ids",
    "read_header",
    "verify_block_signature",
]

_PROPOSAL_HEADER_TAG = Tag.PROPOSAL_HEADER


def array_header(n: int) -> bytes:
    """The msgpack array header for ``n`` elements in its shortest form (msgpack spec, "array")."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\xdd" + n.to_bytes(4, "big")
    raise ValueError(f"array of {n} elements is not encodable")


@dataclass(frozen=True, slots=True)
class BlockSigner:
    """The orderer identity that signs block headers: certificate (DER) and private key."""

    cert_der: bytes
    key: PrivateKey
    backend: str | None = None  # crypto backend name; None: the process default

    def sign(self, header_hash: bytes) -> bytes:
        return get_backend(self.backend).sign(self.key, header_hash)


@dataclass(frozen=True, slots=True)
class AssembledBlock:
    header: BlockHeader
    hash: bytes  # header.hash()
    data: bytes  # canonical Block bytes
    tx_ids: tuple[bytes, ...]


def assemble_block(
    *,
    channel: str,
    number: int,
    previous_hash: bytes,
    txs: Sequence[TxInfo],
    timestamp_ms: int,
    term: int,
    index: int,
    signer: BlockSigner,
) -> AssembledBlock:
    """Build, hash and sign the block holding ``txs`` (already admitted, canonical)."""
    # One transposition in C instead of a Python pass per column.
    ids, leaves, datas = zip(*txs, strict=True) if txs else ((), (), ())
    header = BlockHeader(
        version=BLOCK_VERSION,
        channel=channel,
        number=number,
        previous_hash=previous_hash,
        data_hash=root_of_leaf_hashes(leaves),
        timestamp_ms=timestamp_ms,
        term=term,
        index=index,
    )
    header_bytes = encode(header.to_obj())
    header_hash = digest_bytes(Tag.BLOCK_HEADER, header_bytes)
    signature = signer.sign(header_hash)
    data = b"".join(
        (
            b"\x94",
            header_bytes,
            array_header(len(txs)),
            *datas,
            encode(signer.cert_der),
            encode(signature),
        )
    )
    return AssembledBlock(header, header_hash, data, ids)


@dataclass(frozen=True, slots=True)
class ParsedBlock:
    header: BlockHeader
    hash: bytes
    tx_count: int


def read_header(data: bytes) -> ParsedBlock:
    """The header, its hash and the transaction count of block bytes, without reading the
    transactions. Raises :class:`MalformedError` (an ``EncodingError``) if the prefix is not a
    canonical block header."""
    try:
        u = msgpack.Unpacker(raw=False, use_list=False, strict_map_key=True, max_buffer_size=len(data) + 1)
        u.feed(data)
        if u.read_array_header() != 4:
            raise MalformedError("block: expected an array of 4")
        start = u.tell()
        obj = u.unpack()
        end = u.tell()
        tx_count = u.read_array_header()
    except EncodingError:
        raise
    except Exception as exc:  # the C unpacker raises several unrelated types for bad input
        raise MalformedError(f"block header: {type(exc).__name__}: {exc}") from None
    header = BlockHeader.from_obj(obj)
    header_bytes = data[start:end]
    if encode(header.to_obj()) != header_bytes:
        raise MalformedError("block header: non-canonical encoding")
    return ParsedBlock(header, digest_bytes(Tag.BLOCK_HEADER, header_bytes), tx_count)


def block_tx_ids(data: bytes) -> list[bytes]:
    """The tx ids of the transactions in block bytes (for duplicate detection)."""
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=False)
        txs = obj[1]
        return [digest_bytes(_PROPOSAL_HEADER_TAG, msgpack.packb(tx[0][0], use_bin_type=True)) for tx in txs]
    except Exception as exc:  # malformed blocks never reach here through apply; report, do not crash
        raise MalformedError(f"block transactions: {type(exc).__name__}: {exc}") from None


def verify_block_signature(header: BlockHeader, signature: bytes, orderer_key: PublicKey) -> bool:
    """Whether ``signature`` is the orderer's strict (low-S) signature over ``header.hash()``."""
    return get_backend().verify(orderer_key, signature, header.hash())
