"""The signed headers of a blob request (``PUT``/``GET /blobs/{sha256}``), for client and server.

A caller proves who it is by signing, with the key of its X.509 certificate, the domain-separated
digest of what it asks for::

    digest(Tag.BLOB_REQUEST, [method, channel, contract, collection, sha256, size, nonce, timestamp_ms])

``method`` is ``"PUT"`` or ``"GET"``; ``sha256`` the blob's 32-byte digest; ``size`` the body's
length for a PUT and 0 for a GET; ``nonce`` 24 random bytes; ``timestamp_ms`` the caller's clock.
The server accepts a request once: a nonce seen within the timestamp window is a replay.

Headers (base64 is RFC 4648 with padding; hex is lowercase):

=====================  ==========================================================
``X-Channel``          channel name (optional: the node's default channel)
``X-Collection``       ``contract/collection``
``X-Nonce``            hex of 24 bytes
``X-Timestamp``        unix milliseconds
``X-Certificate``      base64 of the caller's DER certificate
``X-Signature``        base64 of the DER ECDSA P-256 signature over the digest
=====================  ==========================================================

This module never reads the clock itself (callers pass time in) and keeps no state.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from crypto.hashing import Tag, digest
from storage.model import NONCE_BYTES

__all__ = [
    "CERT_HEADER",
    "CHANNEL_HEADER",
    "COLLECTION_HEADER",
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "BlobRequest",
    "HeaderError",
    "parse_headers",
    "request_digest",
    "signed_headers",
]

CHANNEL_HEADER = "X-Channel"
COLLECTION_HEADER = "X-Collection"
NONCE_HEADER = "X-Nonce"
TIMESTAMP_HEADER = "X-Timestamp"
CERT_HEADER = "X-Certificate"
SIGNATURE_HEADER = "X-Signature"
# A DER certificate of an org CA's client is under 1 KiB; 16 KiB bounds a hostile header.
MAX_CERT_HEADER_CHARS = 16 * 1024


class HeaderError(ValueError):
    """A blob request's headers are missing or malformed (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class BlobRequest:
    method: str
    channel: str
    contract: str
    collection: str
    sha256: bytes
    size: int
    nonce: bytes
    timestamp_ms: int
    cert_der: bytes
    signature: bytes

    def digest(self) -> bytes:
        return request_digest(
            self.method,
            self.channel,
            self.contract,
            self.collection,
            self.sha256,
            self.size,
            self.nonce,
            self.timestamp_ms,
        )


def request_digest(
    method: str,
    channel: str,
    contract: str,
    collection: str,
    sha256: bytes,
    size: int,
    nonce: bytes,
    timestamp_ms: int,
) -> bytes:
    return digest(Tag.BLOB_REQUEST, [method, channel, contract, collection, sha256, size, nonce, timestamp_ms])


def signed_headers(
    *,
    method: str,
    channel: str,
    contract: str,
    collection: str,
    sha256: bytes,
    size: int,
    nonce: bytes,
    timestamp_ms: int,
    cert_der: bytes,
    signature: bytes,
) -> dict[str, str]:
    return {
        CHANNEL_HEADER: channel,
        COLLECTION_HEADER: f"{contract}/{collection}",
        NONCE_HEADER: nonce.hex(),
        TIMESTAMP_HEADER: str(timestamp_ms),
        CERT_HEADER: base64.b64encode(cert_der).decode("ascii"),
        SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
    }


def _b64(value: str, what: str) -> bytes:
    if len(value) > MAX_CERT_HEADER_CHARS:
        raise HeaderError(f"{what} is too long")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HeaderError(f"{what} is not base64") from exc


def parse_headers(
    headers: Mapping[str, str], *, method: str, sha256: bytes, size: int, default_channel: str
) -> BlobRequest:
    """The request the headers describe; HeaderError when one is missing or malformed."""

    def need(name: str) -> str:
        v = headers.get(name)
        if not v:
            raise HeaderError(f"missing header {name}")
        return v

    contract, sep, collection = need(COLLECTION_HEADER).partition("/")
    if not sep or not contract or not collection:
        raise HeaderError(f"{COLLECTION_HEADER} must be contract/collection")
    try:
        nonce = bytes.fromhex(need(NONCE_HEADER))
        timestamp_ms = int(need(TIMESTAMP_HEADER))
    except ValueError as exc:
        raise HeaderError(f"{NONCE_HEADER} must be hex and {TIMESTAMP_HEADER} an integer") from exc
    if len(nonce) != NONCE_BYTES:
        raise HeaderError(f"{NONCE_HEADER} must be {NONCE_BYTES} bytes")
    return BlobRequest(
        method,
        headers.get(CHANNEL_HEADER) or default_channel,
        contract,
        collection,
        sha256,
        size,
        nonce,
        timestamp_ms,
        _b64(need(CERT_HEADER), CERT_HEADER),
        _b64(need(SIGNATURE_HEADER), SIGNATURE_HEADER),
    )
