"""Byte layout of every ledger key and value (documented in docs/storage.md, "Keyspaces").

All of one channel's keys start with ``channel_prefix(channel)`` = ``b"C" ‖ u8 len ‖ name``: the
length makes prefixes of different channels prefix-free, so one channel's scans never see
another's keys. One byte after it names the keyspace. Integers are big-endian so that LevelDB's
bytewise order is numeric order; strings are UTF-8, whose bytewise order is code-point order, so
range scans over keys agree with Python's ``str`` ordering.

This module must never touch the database; it only builds and parses bytes.
"""

from __future__ import annotations

import struct

from storage.errors import CorruptionError, StorageError

__all__ = [
    "HASH_LEN",
    "HEIGHT_LEN",
    "LOC_LEN",
    "MAX_CHANNEL_BYTES",
    "MAX_NAMESPACE_BYTES",
    "VERSION_LEN",
    "block_key",
    "channel_prefix",
    "codes_key",
    "coll_bytes",
    "crc_key",
    "hash_key",
    "hashed_key",
    "history_key",
    "history_prefix",
    "meta_key",
    "ns_prefix",
    "pack_height",
    "pack_loc",
    "pack_version",
    "prefix_end",
    "private_key",
    "state_key",
    "tx_key",
    "unpack_height",
    "unpack_loc",
    "unpack_version",
]

HASH_LEN = 32
# Channel names are short identifiers (Fabric limits them to 249 characters); one length byte.
MAX_CHANNEL_BYTES = 255
# Namespaces are contract names; a u16 length is generous.
MAX_NAMESPACE_BYTES = 0xFFFF

META = b"m"  # height marker
BLOCK = b"b"  # block number -> canonical block bytes
CRC = b"k"  # block number -> crc32 of the block bytes
CODES = b"c"  # block number -> validation codes, one byte per tx
HASH = b"h"  # header hash -> block number
TX = b"t"  # tx id -> location
STATE = b"s"  # (namespace, key) -> version ‖ value
HISTORY = b"y"  # (namespace, key, version) -> tx id ‖ flags
HASHED = b"p"  # (namespace, collection, key hash) -> version ‖ value hash  (every node)
PRIVATE = b"q"  # (namespace, collection, key) -> version ‖ value  (member nodes only)
PURGE = b"e"  # (expiry height, namespace, collection, key) -> b""  (block-to-live schedule)
MISSING = b"g"  # (block, tx index, namespace, collection) -> b""  (private data not yet received)
TRANSIENT = b"x"  # digest -> private write set blob, until commit or expiry
TRANSIENT_INDEX = b"z"  # (tx id, namespace, collection) -> digest ‖ u64 height when stored

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_VERSION = struct.Struct(">QI")  # (block number, tx index)
_LOC = struct.Struct(">QIB")  # (block number, tx index, validation code)
_HEIGHT = struct.Struct(">Q32s")  # (height, tip hash)

VERSION_LEN = _VERSION.size
LOC_LEN = _LOC.size
HEIGHT_LEN = _HEIGHT.size

HISTORY_DELETE = 1  # flags bit: the history entry is a delete


def channel_prefix(channel: str) -> bytes:
    raw = channel.encode("utf-8")
    if not 0 < len(raw) <= MAX_CHANNEL_BYTES:
        raise StorageError(f"channel name must be 1..{MAX_CHANNEL_BYTES} UTF-8 bytes: {channel!r}")
    return b"C" + bytes([len(raw)]) + raw


def meta_key(cp: bytes) -> bytes:
    return cp + META


def block_key(cp: bytes, number: int) -> bytes:
    return cp + BLOCK + _U64.pack(number)


def crc_key(cp: bytes, number: int) -> bytes:
    return cp + CRC + _U64.pack(number)


def codes_key(cp: bytes, number: int) -> bytes:
    return cp + CODES + _U64.pack(number)


def hash_key(cp: bytes, header_hash: bytes) -> bytes:
    return cp + HASH + header_hash


def tx_key(cp: bytes, tx_id: bytes) -> bytes:
    return cp + TX + tx_id


def _ns_bytes(ns: str) -> bytes:
    raw = ns.encode("utf-8")
    if len(raw) > MAX_NAMESPACE_BYTES:
        raise StorageError(f"namespace longer than {MAX_NAMESPACE_BYTES} bytes")
    return _U16.pack(len(raw)) + raw


def ns_prefix(cp: bytes, ns: str) -> bytes:
    """Prefix of every state key of ``ns``; the key's UTF-8 bytes follow it."""
    return cp + STATE + _ns_bytes(ns)


def state_key(cp: bytes, ns: str, key: str) -> bytes:
    return ns_prefix(cp, ns) + key.encode("utf-8")


def coll_bytes(ns: str, collection: str) -> bytes:
    """``u16 len ‖ namespace ‖ u16 len ‖ collection``: the prefix-free name of one collection."""
    return _ns_bytes(ns) + _ns_bytes(collection)


def hashed_key(cp: bytes, ns: str, collection: str, key_hash: bytes) -> bytes:
    return cp + HASHED + coll_bytes(ns, collection) + key_hash


def private_key(cp: bytes, ns: str, collection: str, key: str) -> bytes:
    return cp + PRIVATE + coll_bytes(ns, collection) + key.encode("utf-8")


def history_prefix(cp: bytes, ns: str, key: str) -> bytes:
    raw = key.encode("utf-8")
    return cp + HISTORY + _ns_bytes(ns) + _U32.pack(len(raw)) + raw


def history_key(cp: bytes, ns: str, key: str, version: tuple[int, int]) -> bytes:
    return history_prefix(cp, ns, key) + _VERSION.pack(*version)


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no such key)."""
    p = bytearray(prefix)
    while p:
        if p[-1] != 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return None


def pack_version(block: int, index: int) -> bytes:
    return _VERSION.pack(block, index)


def unpack_version(raw: bytes) -> tuple[int, int]:
    if len(raw) < VERSION_LEN:
        raise CorruptionError(f"stored version of {len(raw)} bytes, expected at least {VERSION_LEN}")
    b, i = _VERSION.unpack_from(raw)
    return (b, i)


def pack_loc(block: int, index: int, code: int) -> bytes:
    return _LOC.pack(block, index, code)


def unpack_loc(raw: bytes) -> tuple[int, int, int]:
    if len(raw) != LOC_LEN:
        raise CorruptionError(f"stored tx location of {len(raw)} bytes, expected {LOC_LEN}")
    b, i, c = _LOC.unpack(raw)
    return (b, i, c)


def pack_height(height: int, tip: bytes) -> bytes:
    return _HEIGHT.pack(height, tip)


def unpack_height(raw: bytes) -> tuple[int, bytes]:
    if len(raw) != HEIGHT_LEN:
        raise CorruptionError(f"height marker of {len(raw)} bytes, expected {HEIGHT_LEN}")
    h, tip = _HEIGHT.unpack(raw)
    return (h, tip)


U64 = _U64
VERSION_STRUCT = _VERSION
LOC_STRUCT = _LOC
U32 = _U32
