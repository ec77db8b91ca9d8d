"""Canonical encoding: the only producer of bytes that are hashed or signed.

A deterministic subset of MessagePack (https://github.com/msgpack/msgpack/blob/master/spec.md):

* values: ``None``, ``bool``, ``int`` in [-2**63, 2**64 - 1], ``bytes``, ``str`` (UTF-8),
  arrays (``list``/``tuple``), maps with ``str`` keys;
* every integer, string, binary, array and map header takes its shortest form;
* map keys are unique and sorted by their UTF-8 bytes (which is code-point order);
* no floats, no extension types, no trailing bytes.

Given a value there is exactly one encoding, and ``decode`` accepts exactly the encodings that
``encode`` produces: it decodes, re-encodes and compares, so a non-shortest header, an unsorted or
duplicate key, a float or an extension type is rejected with :class:`EncodingError`.

Decoding returns arrays as ``tuple`` (immutable, hashable) and maps as ``dict``.

This module must never encode floats, must never accept anything it would not itself produce, and
must never let an exception other than :class:`EncodingError` escape for bad input.
"""

from __future__ import annotations

from typing import Any

import msgpack

__all__ = [
    "MAX_DECODE_BYTES",
    "MAX_DEPTH",
    "EncodingError",
    "decode",
    "encode",
]

# Largest input decode() accepts by default. Blocks are the largest hashed structures: a block of
# the largest batch (BatchAbsoluteMaxBytes, 10 MiB by default) plus headers fits well inside this.
MAX_DECODE_BYTES = 32 * 1024 * 1024
# Deepest nesting of arrays/maps. Ledger structures nest about six levels; contract values a few
# more. A bound keeps recursion (ours and the C unpacker's) far from any stack limit.
MAX_DEPTH = 32

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class EncodingError(ValueError):
    """The value cannot be encoded canonically, or the bytes are not a canonical encoding."""


def _normalise(obj: Any, depth: int) -> Any:
    """Check ``obj`` against the canonical subset and return it with maps in key order."""
    t = type(obj)
    if t is bytes or t is str or t is bool or obj is None:
        return obj
    if t is int:
        if _INT_MIN <= obj <= _INT_MAX:
            return obj
        raise EncodingError(f"integer out of 64-bit range: {obj}")
    if depth >= MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}")
    if t is tuple or t is list:
        return [_normalise(v, depth + 1) for v in obj]
    if t is dict:
        out = {}
        for k in sorted(obj):
            if type(k) is not str:
                raise EncodingError(f"map key must be str, got {type(k).__name__}")
            out[k] = _normalise(obj[k], depth + 1)
        return out
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, float):
        raise EncodingError("floats are not allowed in canonical encoding")
    if isinstance(obj, int):  # IntEnum and other int subclasses encode as their value
        return _normalise(int(obj), depth)
    if isinstance(obj, str):
        return str(obj)
    raise EncodingError(f"type {type(obj).__name__} is not encodable")


_packer_kwargs = {"use_bin_type": True, "strict_types": True}


def encode(obj: Any) -> bytes:
    """Return the canonical encoding of ``obj``; raise :class:`EncodingError` if it has none."""
    try:
        return msgpack.packb(_normalise(obj, 0), **_packer_kwargs)
    except EncodingError:
        raise
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError) as exc:
        raise EncodingError(str(exc)) from exc


def _reject_ext(code: int, data: bytes) -> Any:
    raise EncodingError(f"extension type {code} is not allowed")


def decode(data: bytes, *, max_bytes: int = MAX_DECODE_BYTES) -> Any:
    """Decode canonical bytes; raise :class:`EncodingError` for anything non-canonical."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodingError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise EncodingError(f"input of {len(data)} bytes exceeds the limit of {max_bytes}")
    if not data:
        raise EncodingError("empty input")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=True,
            ext_hook=_reject_ext,
        )
    except EncodingError:
        raise
    except msgpack.ExtraData as exc:
        raise EncodingError("trailing bytes after the value") from exc
    except Exception as exc:  # the C unpacker raises several unrelated types for bad input
        raise EncodingError(f"malformed input: {type(exc).__name__}: {exc}") from exc
    if encode(obj) != data:
        raise EncodingError("non-canonical encoding")
    return obj
