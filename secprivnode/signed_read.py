"""Signed state reads: the request a client signs to read a namespace's state directly.

``state_get``, ``state_getRange`` and ``state_getHistory`` answer only a caller who proves who
they are. The caller signs a :class:`ReadRequest`::

    [channel, method, params, creator, nonce, timestamp_ms]

* ``channel``: the channel read (the node's default channel must be named explicitly);
* ``method``: the JSON-RPC method name;
* ``params``: the method's parameters other than ``channel`` and ``auth``, in the order of the
  method table, with defaults filled in (see :data:`SIGNED_READ_PARAMS`);
* ``creator``: the caller's X.509 certificate (DER); ``nonce``: :data:`READ_NONCE_BYTES` random
  bytes; ``timestamp_ms``: the caller's clock (unix milliseconds).

The signature is DER ECDSA P-256 (low S) over ``sha256(Tag.READ_REQUEST ‖ encode(request))``, the
canonical encoding of the array above. On the wire the request travels as the ``auth`` parameter
(:func:`auth_to_json`); the node rebuilds the request from the parameters it actually executes, so
a signature covers exactly the read performed.

This module builds and encodes requests only; checking them is :mod:`secprivnode.read_guard`'s job.
It never holds a private key longer than one call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from crypto.hashing import Tag, digest
from storage.model import NONCE_BYTES

__all__ = [
    "READ_NONCE_BYTES",
    "SIGNED_READ_PARAMS",
    "ReadRequest",
    "SignedRead",
    "auth_to_json",
    "sign_read",
]

# Random bytes per read request: as many as a proposal's nonce, so they never collide by chance.
READ_NONCE_BYTES = NONCE_BYTES

# Methods that need a signed read, and the parameters (in order) their signature covers.
SIGNED_READ_PARAMS: dict[str, tuple[str, ...]] = {
    "state_get": ("contract", "key"),
    "state_getRange": ("contract", "start", "end", "limit"),
    "state_getHistory": ("contract", "key", "limit"),
}


@dataclass(frozen=True, slots=True)
class ReadRequest:
    channel: str
    method: str
    params: tuple[Any, ...]
    creator: bytes  # certificate DER
    nonce: bytes
    timestamp_ms: int

    @property
    def namespace(self) -> str:
        """The namespace read: the contract parameter, first in every signed read."""
        return str(self.params[0])

    def to_obj(self) -> list[Any]:
        return [self.channel, self.method, list(self.params), self.creator, self.nonce, self.timestamp_ms]

    def digest(self) -> bytes:
        return digest(Tag.READ_REQUEST, self.to_obj())


@dataclass(frozen=True, slots=True)
class SignedRead:
    request: ReadRequest
    signature: bytes


def sign_read(
    cert_der: bytes,
    sign: Callable[[bytes], bytes],
    channel: str,
    method: str,
    params: Sequence[Any],
    *,
    nonce: bytes | None = None,
    timestamp_ms: int | None = None,
) -> SignedRead:
    """A read request for ``method(params)`` on ``channel``, signed with ``sign`` (the creator's key)."""
    if method not in SIGNED_READ_PARAMS or len(params) != len(SIGNED_READ_PARAMS[method]):
        raise ValueError(f"{method} is not a signed read with parameters {SIGNED_READ_PARAMS.get(method)}")
    req = ReadRequest(
        channel,
        method,
        tuple(params),
        cert_der,
        nonce if nonce is not None else os.urandom(READ_NONCE_BYTES),
        timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
    )
    return SignedRead(req, sign(req.digest()))


def auth_to_json(read: SignedRead) -> dict[str, Any]:
    """The ``auth`` parameter carrying ``read``: bytes as 0x-hex, as everywhere at the RPC edge."""
    r = read.request
    return {
        "channel": r.channel,
        "creator": "0x" + r.creator.hex(),
        "nonce": "0x" + r.nonce.hex(),
        "timestamp_ms": r.timestamp_ms,
        "signature": "0x" + read.signature.hex(),
    }
