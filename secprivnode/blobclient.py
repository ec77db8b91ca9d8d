"""Client side of ``PUT``/``GET /blobs/{sha256}``: streaming upload and download with signed headers.

Files are read and written in chunks (``CHUNK_BYTES``), hashed as they stream, so a blob of any
size costs a chunk of memory. A download is written to a temp file beside the destination and
renamed only once its length and SHA-256 match; otherwise it is removed and :class:`BlobClientError`
says why. The CLI (``secprivnode blob put|get``) is a thin shell over these functions.

This module never sends a private key anywhere (it signs locally) and never keeps a partial
download under the requested name.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from secprivnode.client import ClientIdentity
from secprivnode.rpc.blobauth import request_digest, signed_headers
from storage.blobstore import CHUNK_BYTES
from storage.model import NONCE_BYTES

__all__ = ["TIMEOUT_S", "BlobClientError", "file_sha256", "get_blob", "put_blob", "sign_request"]

# Per socket operation, not per transfer: a large blob may take minutes in total.
TIMEOUT_S = 60.0


class BlobClientError(Exception):
    """The node refused the request (``status`` is its HTTP status; 0: no usable answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


def file_sha256(path: Path) -> tuple[bytes, int]:
    """SHA-256 and size of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
            size += len(chunk)
    return h.digest(), size


def sign_request(
    identity: ClientIdentity,
    method: str,
    channel: str,
    collection: str,
    sha256: bytes,
    size: int,
    *,
    now_ms: int | None = None,
) -> dict[str, str]:
    """The signed headers of one request (fresh nonce; the local clock unless ``now_ms``)."""
    contract, sep, name = collection.partition("/")
    if not sep or not contract or not name:
        raise ValueError("collection must be contract/collection, e.g. assets/shared")
    nonce = os.urandom(NONCE_BYTES)
    ts = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    d = request_digest(method, channel, contract, name, sha256, size, nonce, ts)
    return signed_headers(
        method=method,
        channel=channel,
        contract=contract,
        collection=name,
        sha256=sha256,
        size=size,
        nonce=nonce,
        timestamp_ms=ts,
        cert_der=identity.cert_der,
        signature=identity.sign(d),
    )


def _connection(url: str, context: ssl.SSLContext | None) -> http.client.HTTPConnection:
    """A connection to the node; ``context`` verifies an https:// node (its channel's CAs)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=TIMEOUT_S, blocksize=CHUNK_BYTES, context=context
        )
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S, blocksize=CHUNK_BYTES)


def _refusal(resp: http.client.HTTPResponse) -> BlobClientError:
    raw = resp.read(64 * 1024)
    try:
        message = str(json.loads(raw).get("error", raw.decode(errors="replace")))
    except (ValueError, AttributeError):
        message = raw.decode(errors="replace")
    return BlobClientError(resp.status, message)


def put_blob(
    url: str,
    identity: ClientIdentity,
    path: Path,
    channel: str,
    collection: str,
    *,
    context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """Upload a file as a blob of ``collection`` (``contract/collection``); the node's JSON answer."""
    digest, size = file_sha256(path)
    headers = sign_request(identity, "PUT", channel, collection, digest, size)
    headers |= {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
    conn = _connection(url, context)
    try:
        with open(path, "rb") as f:
            conn.request("PUT", f"/blobs/{digest.hex()}", body=f, headers=headers)
            resp = conn.getresponse()
        if resp.status not in (200, 201):
            raise _refusal(resp)
        answer: dict[str, Any] = json.loads(resp.read())
        answer["created"] = resp.status == 201
        return answer
    except (OSError, http.client.HTTPException) as exc:
        raise BlobClientError(0, f"cannot reach {url}: {exc}") from exc
    finally:
        conn.close()


def get_blob(
    url: str,
    identity: ClientIdentity,
    sha256: bytes,
    out: Path,
    channel: str,
    collection: str,
    *,
    context: ssl.SSLContext | None = None,
) -> int:
    """Download a blob into ``out`` (verified before it gets that name); return its size."""
    headers = sign_request(identity, "GET", channel, collection, sha256, 0)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    conn = _connection(url, context)
    try:
        conn.request("GET", f"/blobs/{sha256.hex()}", headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            raise _refusal(resp)
        h = hashlib.sha256()
        size = 0
        with open(tmp, "wb") as f:
            while chunk := resp.read(CHUNK_BYTES):
                h.update(chunk)
                size += len(chunk)
                f.write(chunk)
        if h.digest() != sha256:
            raise BlobClientError(0, f"downloaded {size} bytes do not hash to {sha256.hex()}")
        os.replace(tmp, out)
        return size
    except (OSError, http.client.HTTPException) as exc:
        raise BlobClientError(0, f"download from {url} failed: {exc}") from exc
    finally:
        conn.close()
        tmp.unlink(missing_ok=True)
