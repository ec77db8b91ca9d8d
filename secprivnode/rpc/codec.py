"""Conversion between the JSON of the RPC edge and the ledger's domain values.

Bytes travel as ``0x``-prefixed lowercase hex, both ways; anything else (uppercase digits, an odd
number of digits, a missing prefix) is refused with :class:`CodecError`, which the dispatcher
reports as JSON-RPC -32602 Invalid params. Validation codes travel by name. Proposals travel as
the hex of the canonical encoding of ``Proposal.to_obj()``: exactly the bytes the creator hashed
and signed, so the server never re-derives a signed structure from JSON.

This module is shared by the server and the client SDK. It never touches the network or the
clock, and it never turns a float into anything that is hashed or signed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

from crypto.encoding import EncodingError, decode, encode
from storage.blockstore import BlockSummary
from storage.model import Block, BlockHeader, Proposal, ReadWriteSet, Response, ValidationCode

__all__ = [
    "HEADER_FIELDS",
    "MAX_JSON_DEPTH",
    "CodecError",
    "block_to_json",
    "from_hex",
    "header_from_json",
    "header_to_json",
    "proposal_from_hex",
    "proposal_to_hex",
    "response_to_json",
    "rwset_to_json",
    "to_hex",
    "to_json",
]

_HEX_RE = re.compile(r"0x(?:[0-9a-f]{2})*\Z")
# Results are built from the node's own data (nesting of a dozen levels at most); the bound turns
# a cycle or a pathological contract value into a clean error instead of a RecursionError.
MAX_JSON_DEPTH = 64

# The block header fields in their hashed order (storage.model.BlockHeader.to_obj).
HEADER_FIELDS = ("version", "channel", "number", "previous_hash", "data_hash", "timestamp_ms", "term", "index")


class CodecError(ValueError):
    """A JSON value does not have the form the RPC interface requires."""


def to_hex(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def from_hex(value: Any, what: str, *, length: int | None = None, max_bytes: int | None = None) -> bytes:
    """Parse ``0x``-prefixed lowercase hex; ``what`` names the field in the error message."""
    if not isinstance(value, str):
        raise CodecError(f"{what}: expected a 0x-prefixed hex string, got {_json_type(value)}")
    if not _HEX_RE.match(value):
        raise CodecError(f"{what}: malformed hex (expected 0x followed by pairs of lowercase hex digits)")
    data = bytes.fromhex(value[2:])
    if length is not None and len(data) != length:
        raise CodecError(f"{what}: expected {length} bytes, got {len(data)}")
    if max_bytes is not None and len(data) > max_bytes:
        raise CodecError(f"{what}: {len(data)} bytes exceeds the limit of {max_bytes}")
    return data


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# ---- domain -> JSON ---------------------------------------------------------------------------


def header_to_json(h: BlockHeader) -> dict[str, Any]:
    return {
        "version": h.version,
        "channel": h.channel,
        "number": h.number,
        "previous_hash": to_hex(h.previous_hash),
        "data_hash": to_hex(h.data_hash),
        "timestamp_ms": h.timestamp_ms,
        "term": h.term,
        "index": h.index,
    }


def header_from_json(obj: Any) -> BlockHeader:
    """Rebuild a header from :func:`header_to_json` output; strict on every field."""
    if not isinstance(obj, dict):
        raise CodecError("header: expected an object")
    missing = [f for f in HEADER_FIELDS if f not in obj]
    if missing:
        raise CodecError(f"header: missing field {missing[0]!r}")
    ints = {}
    for name in ("version", "number", "timestamp_ms", "term", "index"):
        v = obj[name]
        if type(v) is not int or v < 0:
            raise CodecError(f"header.{name}: expected a non-negative integer")
        ints[name] = v
    if not isinstance(obj["channel"], str):
        raise CodecError("header.channel: expected a string")
    return BlockHeader(
        version=ints["version"],
        channel=obj["channel"],
        number=ints["number"],
        previous_hash=from_hex(obj["previous_hash"], "header.previous_hash", length=32),
        data_hash=from_hex(obj["data_hash"], "header.data_hash", length=32),
        timestamp_ms=ints["timestamp_ms"],
        term=ints["term"],
        index=ints["index"],
    )


def block_to_json(block: BlockSummary, codes: list[ValidationCode] | None) -> dict[str, Any]:
    """A block as RPC clients see it: hash, header fields, tx ids and validation codes by name."""
    out: dict[str, Any] = {"hash": to_hex(block.hash)}
    out.update(header_to_json(block.header))
    out["tx_count"] = len(block.tx_ids)
    out["tx_ids"] = [to_hex(t) for t in block.tx_ids]
    out["validation_codes"] = [ValidationCode(c).name for c in codes] if codes is not None else None
    out["orderer"] = to_hex(block.orderer)
    out["signature"] = to_hex(block.signature)
    return out


def response_to_json(r: Response) -> dict[str, Any]:
    return {
        "status": r.status,
        "message": r.message,
        "payload": to_hex(r.payload),
        "events": [{"name": n, "payload": to_hex(p)} for n, p in r.events],
    }


def rwset_to_json(rw: ReadWriteSet) -> dict[str, Any]:
    def ver(v: tuple[int, int] | None) -> list[int] | None:
        return None if v is None else [v[0], v[1]]

    return {
        "namespace": rw.namespace,
        "reads": [{"key": r.key, "version": ver(r.version)} for r in rw.reads],
        "writes": [{"key": w.key, "value": None if w.value is None else to_hex(w.value)} for w in rw.writes],
        "range_reads": [
            {"start": q.start, "end": q.end, "reads": [{"key": r.key, "version": ver(r.version)} for r in q.reads]}
            for q in rw.range_reads
        ],
        "collections": [
            {
                "collection": c.collection,
                "reads": [{"key_hash": to_hex(r.key_hash), "version": ver(r.version)} for r in c.reads],
                "writes": [
                    {
                        "key_hash": to_hex(w.key_hash),
                        "value_hash": None if w.value_hash is None else to_hex(w.value_hash),
                    }
                    for w in c.writes
                ],
            }
            for c in rw.collections
        ],
    }


def to_json(value: Any, _depth: int = 0) -> Any:
    """Convert a service result to JSON: bytes -> hex, enums -> names, ledger structures -> objects.

    Raises ``TypeError`` for anything it cannot represent (the dispatcher reports that as an
    internal error: it is the node's bug, not the caller's).
    """
    if _depth > MAX_JSON_DEPTH:
        raise TypeError(f"result nests deeper than {MAX_JSON_DEPTH}")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError("non-finite float in result")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return to_hex(bytes(value))
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"result map key {k!r} is not a string")
            out[k] = to_json(v, _depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [to_json(v, _depth + 1) for v in value]
    if isinstance(value, BlockHeader):
        return header_to_json(value)
    if isinstance(value, Block):
        return block_to_json(BlockSummary.of(value), None)
    if isinstance(value, Response):
        return response_to_json(value)
    if isinstance(value, ReadWriteSet):
        return rwset_to_json(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return [to_json(v, _depth + 1) for v in sorted(value)]
    raise TypeError(f"cannot represent {type(value).__name__} in JSON")


# ---- proposals ----------------------------------------------------------------------------------


def proposal_to_hex(p: Proposal) -> str:
    """The canonical bytes the creator signs the hash of, as hex (transient inputs travel apart)."""
    return to_hex(encode(p.to_obj()))


def proposal_from_hex(value: Any, transient: Mapping[str, bytes] | None = None, *, max_bytes: int) -> Proposal:
    raw = from_hex(value, "proposal", max_bytes=max_bytes)
    try:
        p = Proposal.from_obj(decode(raw))
    except EncodingError as exc:
        raise CodecError(f"proposal: not a canonical Proposal encoding: {exc}") from exc
    return dataclasses.replace(p, transient=dict(transient or {})) if transient else p
