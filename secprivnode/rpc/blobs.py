"""``PUT /blobs/{sha256}`` and ``GET /blobs/{sha256}``: blobs of private collections over plain HTTP.

Bodies stream in chunks both ways (never JSON, never hex, never whole in memory). Every request
carries the signed headers of :mod:`secprivnode.rpc.blobauth`; the handler checks, in order:

======  ==================================================================================
400     the name is not 64 hex digits, a header is missing or malformed, or (PUT) the body's
        length or SHA-256 differs from what was announced (nothing is kept)
401     the certificate is not a member of the channel (unknown CA, expired), the signature
        does not verify, the timestamp is more than ``AUTH_SKEW_MS`` away from the node's
        clock, or the nonce was already used
403     the certificate is revoked, or the caller's or this node's organisation is not a
        member of the collection
404     unknown channel or collection; (GET) no member node holds the blob
409     (PUT) the same bytes are already stored as a blob of another collection
411     (PUT) no Content-Length
413     (PUT) Content-Length above the node's ``rpc.max_blob_bytes``
======  ==================================================================================

A PUT answers 201 (stored) or 200 (already stored) with a JSON object ``{"sha256", "size",
"channel", "collection"}``; a GET answers 200 with the bytes (``application/octet-stream``,
``Content-Length``, ``X-Blob-Sha256``). Documented in docs/rpc.md.

This module decides nothing about collections or storage itself (that is
:mod:`secprivnode.blobnet`) and never logs a header's or a body's content.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from aiohttp import web

from crypto.msp import MSP, IdentityError, Revoked
from crypto.signing import verify
from secprivnode.blobnet import BlobError
from secprivnode.rpc.blobauth import BlobRequest, HeaderError, parse_headers
from storage.blobstore import CHUNK_BYTES
from storage.errors import CorruptionError

__all__ = ["AUTH_SKEW_MS", "NONCE_CACHE_MAX", "BlobService", "add_blob_routes"]

# How far a request's timestamp may be from the node's clock: clients' clocks drift, and a replay
# outside the window is refused by the timestamp alone.
AUTH_SKEW_MS = 5 * 60 * 1000
# Nonces remembered inside the window. At most this many blob requests per window are checked for
# replay exactly; beyond it the oldest are forgotten first (they are also the first to expire).
NONCE_CACHE_MAX = 65536


class BlobService(Protocol):
    """What the handlers need from the node (``secprivnode.blobnet.BlobNet`` with its channels)."""

    default_channel: str

    @property
    def max_blob_bytes(self) -> int: ...

    def msp(self, channel: str) -> MSP: ...

    def check_collection(self, channel: str, ns: str, collection: str, caller_org: str) -> Any: ...

    async def receive(
        self, channel: str, ns: str, collection: str, digest: bytes, size: int, chunks: AsyncIterator[bytes]
    ) -> bool: ...

    async def ensure(self, channel: str, ns: str, collection: str, digest: bytes) -> int: ...

    def chunks(self, digest: bytes) -> Any: ...


_SERVICE = web.AppKey("blob_service", object)
_NONCES = web.AppKey("blob_nonces", OrderedDict)
_CLOCK = web.AppKey("blob_clock", object)


def _fail(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _digest_of(request: web.Request) -> bytes | None:
    name = request.match_info["sha256"]
    if len(name) != 64:
        return None
    try:
        return bytes.fromhex(name)
    except ValueError:
        return None


def _authenticate(request: web.Request, req: BlobRequest, svc: BlobService) -> str:
    """The caller's organisation; BlobError 401/403 as the module docstring says."""
    clock: Callable[[], int] = request.app[_CLOCK]  # type: ignore[assignment]
    now_ms = clock()
    if abs(now_ms - req.timestamp_ms) > AUTH_SKEW_MS:
        raise BlobError(401, "request timestamp is outside the accepted window")
    try:
        ident = svc.msp(req.channel).validate(req.cert_der, now=now_ms // 1000)
    except Revoked as exc:
        raise BlobError(403, f"certificate revoked: {exc}") from exc
    except IdentityError as exc:
        raise BlobError(401, f"unknown identity: {exc}") from exc
    if not verify(ident.public_key, req.signature, req.digest()):
        raise BlobError(401, "signature does not verify")
    nonces: OrderedDict[bytes, int] = request.app[_NONCES]
    while nonces and next(iter(nonces.values())) < now_ms - AUTH_SKEW_MS:
        nonces.popitem(last=False)
    if req.nonce in nonces:
        raise BlobError(401, "nonce already used")
    nonces[req.nonce] = now_ms
    if len(nonces) > NONCE_CACHE_MAX:
        nonces.popitem(last=False)
    svc.check_collection(req.channel, req.contract, req.collection, ident.org)
    return ident.org


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        yield chunk


async def _put(request: web.Request) -> web.StreamResponse:
    svc: BlobService = request.app[_SERVICE]  # type: ignore[assignment]
    digest = _digest_of(request)
    if digest is None:
        return _fail(400, "a blob is named by the 64 hex digits of its SHA-256")
    size = request.content_length
    if size is None:
        return _fail(411, "Content-Length is required")
    if size > svc.max_blob_bytes:
        return _fail(413, f"blob of {size} bytes exceeds the limit of {svc.max_blob_bytes} bytes")
    try:
        req = parse_headers(
            request.headers, method="PUT", sha256=digest, size=size, default_channel=svc.default_channel
        )
        _authenticate(request, req, svc)
        created = await svc.receive(req.channel, req.contract, req.collection, digest, size, _body(request))
    except HeaderError as exc:
        return _fail(400, str(exc))
    except BlobError as exc:
        return _fail(exc.status, exc.message)
    body = {
        "sha256": digest.hex(),
        "size": size,
        "channel": req.channel,
        "collection": f"{req.contract}/{req.collection}",
    }
    return web.json_response(body, status=201 if created else 200)


async def _get(request: web.Request) -> web.StreamResponse:
    svc: BlobService = request.app[_SERVICE]  # type: ignore[assignment]
    digest = _digest_of(request)
    if digest is None:
        return _fail(400, "a blob is named by the 64 hex digits of its SHA-256")
    try:
        req = parse_headers(request.headers, method="GET", sha256=digest, size=0, default_channel=svc.default_channel)
        _authenticate(request, req, svc)
        size = await svc.ensure(req.channel, req.contract, req.collection, digest)
        chunks = svc.chunks(digest)
    except HeaderError as exc:
        return _fail(400, str(exc))
    except BlobError as exc:
        return _fail(exc.status, exc.message)
    resp = web.StreamResponse(
        status=200, headers={"Content-Type": "application/octet-stream", "X-Blob-Sha256": digest.hex()}
    )
    resp.content_length = size
    await resp.prepare(request)
    try:
        for chunk in chunks:
            await resp.write(chunk)
    except CorruptionError:
        # The stored file does not hash to its name: cut the response short so the client's
        # length (and hash) check fails, rather than completing it.
        if request.transport is not None:
            request.transport.close()
        raise
    await resp.write_eof()
    return resp


def add_blob_routes(
    app: web.Application, service: BlobService, *, clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000
) -> None:
    """Serve ``PUT``/``GET /blobs/{sha256}`` from ``service`` on ``app`` (before it starts)."""
    app[_SERVICE] = service
    app[_NONCES] = OrderedDict()
    app[_CLOCK] = clock_ms
    app.router.add_put("/blobs/{sha256}", _put)
    app.router.add_get("/blobs/{sha256}", _get)
