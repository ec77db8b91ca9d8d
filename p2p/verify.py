"""Checking blocks received from peers before anything downstream sees them (sans-I/O).

A block from gossip or state transfer is accepted only if:

* its bytes split into ``[header, [tx...], orderer, signature]`` and the parts outside the hashed
  ranges are in canonical form, so the bytes we store are exactly the orderer's;
* the header decodes strictly, has this channel, the expected number and version;
* its ``previous_hash`` is the hash of the block before it (when that hash is known here);
* ``data_hash`` is the RFC 6962 Merkle root (:mod:`crypto.merkle`) of its transaction hashes;
* ``orderer`` is an orderer certificate the injected resolver maps to a key, and ``signature``
  verifies under that key over the header hash.

Transaction signatures and endorsement policies are *not* checked here: that is the committer's
validation, which writes a per-transaction code. This module holds no state, does no I/O, and
decodes each block once (hash ranges are taken from the encoded bytes, not re-encoded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgpack

from crypto.encoding import EncodingError, decode
from crypto.hashing import Tag, digest_bytes
from crypto.merkle import merkle_root
from crypto.signing import PublicKey, get_backend
from p2p.errors import RemoteProtocolError
from storage.model import BLOCK_VERSIONS, Block, BlockHeader

__all__ = ["InvalidBlock", "OrdererKeyResolver", "VerifiedBlock", "verify_block", "verify_chain_segment"]

# (channel, orderer certificate DER) -> the orderer's public key, or None if it is not an orderer
# of that channel (unknown, revoked, or not in the consenter set).
OrdererKeyResolver = Callable[[str, bytes], PublicKey | None]


class InvalidBlock(RemoteProtocolError):
    """A peer sent a block that fails verification: the sender is penalised."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"invalid block {number}: {reason}")
        self.number = number
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedBlock:
    """A block that passed :func:`verify_block`, with its canonical bytes as received."""

    header: BlockHeader
    hash: bytes  # header hash
    data: bytes  # canonical encoding, ready to store without re-encoding
    tx_count: int

    @property
    def number(self) -> int:
        return self.header.number

    def to_block(self) -> Block:
        """The decoded block (strict canonical decoding)."""
        return Block.decode(self.data)


def _array_header(n: int) -> bytes:
    # msgpack spec: fixarray below 16 elements, array 16 below 2**16, else array 32.
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


_pack = msgpack.Packer(use_bin_type=True).pack
_BLOCK_FIELDS = 4  # [header, [tx...], orderer, signature] (storage.model.Block.to_obj)


@dataclass(frozen=True, slots=True)
class _Parts:
    header: tuple[int, int]  # byte range of the header's encoding
    txs_start: int  # where the first transaction's encoding begins
    tx_ends: list[int]  # where each transaction's encoding ends (they are contiguous)
    orderer: bytes
    signature: bytes


def _split(data: bytes) -> _Parts:
    """Locate the header and the transactions' byte ranges with one C-level skip per item.

    Only the ranges are needed here (the Merkle leaves hash them); the transactions' inner shape
    is the committer's to check when it decodes the block.
    """
    up = msgpack.Unpacker(max_buffer_size=len(data) + 1)
    up.feed(data)
    try:
        if up.read_array_header() != _BLOCK_FIELDS:
            raise InvalidBlockShape("expected an array of 4")
        h0 = up.tell()
        up.skip()
        h1 = up.tell()
        n = up.read_array_header()
        if n > len(data):
            raise InvalidBlockShape("transaction count exceeds the block size")
        start = up.tell()
        skip, tell = up.skip, up.tell
        ends = []
        for _ in range(n):
            skip()
            ends.append(tell())
        orderer, signature = up.unpack(), up.unpack()
        end = up.tell()
    except InvalidBlockShape:
        raise
    except Exception as exc:  # OutOfData, StackError, ValueError...: the bytes are not a block
        raise InvalidBlockShape(f"{type(exc).__name__}: {exc}") from exc
    if type(orderer) is not bytes or type(signature) is not bytes:
        raise InvalidBlockShape("orderer and signature must be bytes")
    if end != len(data):
        raise InvalidBlockShape("trailing bytes")
    return _Parts((h0, h1), start, ends, orderer, signature)


class InvalidBlockShape(ValueError):
    """The bytes do not have the outer shape of a block."""


def verify_block(
    data: bytes,
    *,
    channel: str,
    number: int,
    previous_hash: bytes | None,
    resolve_key: OrdererKeyResolver,
) -> VerifiedBlock:
    """Verify one encoded block; :class:`InvalidBlock` says why it is refused."""
    try:
        parts = _split(data)
    except InvalidBlockShape as exc:
        raise InvalidBlock(number, f"does not parse: {exc}") from exc
    h0, h1 = parts.header
    n = len(parts.tx_ends)
    # The hashed ranges are the orderer's bytes; the framing around them must be canonical too,
    # so that what we store is byte-for-byte the canonical encoding.
    if (
        data[:h0] != b"\x94"
        or data[h1 : parts.txs_start] != _array_header(n)
        or data[parts.tx_ends[-1] if n else parts.txs_start :] != _pack(parts.orderer) + _pack(parts.signature)
    ):
        raise InvalidBlock(number, "non-canonical block framing")
    try:
        header = BlockHeader.from_obj(decode(data[h0:h1]))
    except EncodingError as exc:
        raise InvalidBlock(number, f"header: {exc}") from exc
    if header.version not in BLOCK_VERSIONS:
        raise InvalidBlock(number, f"version {header.version}")
    if header.channel != channel:
        raise InvalidBlock(number, f"channel {header.channel!r}, expected {channel!r}")
    if header.number != number:
        raise InvalidBlock(number, f"header says number {header.number}")
    if previous_hash is not None and header.previous_hash != previous_hash:
        raise InvalidBlock(number, "previous hash does not link to the block before it")
    tag, sha = Tag.TRANSACTION, hashlib.sha256
    leaves, s = [], parts.txs_start
    for e in parts.tx_ends:
        leaves.append(sha(tag + data[s:e]).digest())  # digest(TRANSACTION, tx) from its bytes
        s = e
    if merkle_root(leaves) != header.data_hash:
        raise InvalidBlock(number, "data hash is not the Merkle root of its transactions")
    key = resolve_key(channel, parts.orderer)
    if key is None:
        raise InvalidBlock(number, "signed by an unknown orderer")
    header_hash = digest_bytes(Tag.BLOCK_HEADER, data[h0:h1])
    if not get_backend().verify(key, parts.signature, header_hash):
        raise InvalidBlock(number, "orderer signature does not verify")
    return VerifiedBlock(header, header_hash, data, n)


def verify_chain_segment(
    blocks: Sequence[bytes],
    *,
    channel: str,
    start: int,
    previous_hash: bytes | None,
    resolve_key: OrdererKeyResolver,
) -> list[VerifiedBlock]:
    """Verify consecutive blocks from ``start``, each linked to the one before it."""
    out: list[VerifiedBlock] = []
    prev = previous_hash
    for i, data in enumerate(blocks):
        vb = verify_block(data, channel=channel, number=start + i, previous_hash=prev, resolve_key=resolve_key)
        out.append(vb)
        prev = vb.hash
    return out
