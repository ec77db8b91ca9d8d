"""Blobs of private collections on the node: upload, download, dissemination to member nodes, purge.

A blob belongs to one collection of one contract (``storage.model.CollectionConfig``). Its bytes
live in the node's :class:`storage.blobstore.BlobStore` (files named by SHA-256) and its record
(collection, size, expiry height) in the channel's private keyspace (:mod:`storage.privstate`).

* **Upload** (:meth:`BlobNet.receive`, behind ``PUT /blobs/{sha256}``): only on a node whose
  organisation is a member of the collection. The body streams to a temp file in chunks while it
  is hashed and counted; a wrong hash or size keeps nothing. The blob's life starts at the tip
  block ``t`` when it was stored: with a block-to-live ``b`` it is purged when block ``t + b``
  commits, on every member (the expiry travels with the offer), like private data of block ``t``.
* **Dissemination**: after an upload the node offers the blob (``wire.BLOB_OFFER``) to every
  connected node of a member organisation; each pulls it in chunks of at most ``CHUNK_BYTES``
  (``wire.BLOB_CHUNK``) and checks the hash before installing it. A member that lacks a blob when
  a client asks for it pulls it on demand from member peers (:meth:`BlobNet.ensure`). Nothing is
  ever offered to, or served to, a node of a non-member organisation.
* **Purge**: block-to-live purges arrive from the committer (:mod:`secprivnode.privnet` calls
  :meth:`purge`); the blob store's garbage collection removes stray files (no record) after its
  grace period.

Memory stays bounded: a transfer holds one chunk at a time. This module never reads the clock
(heights only) and never stores a blob under a digest it did not compute.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from crypto.msp import MSP
from p2p.api import PeerTransport
from p2p.errors import P2PError
from secprivnode import wire
from secprivnode.contracts.config_contract import msp_from_config
from secprivnode.pipeline.privdata import ChannelPrivateData
from secprivnode.pipeline.tasks import cancel_and_wait
from secprivnode.privnet import member_peers
from storage.blobstore import CHUNK_BYTES, BlobStore, BlobTooLarge, DigestMismatch
from storage.errors import NotFound, StorageError

__all__ = ["BLOB_PULLS_MAX", "BLOB_TASKS_MAX", "CHUNK_TIMEOUT_S", "GC_INTERVAL_S", "BlobError", "BlobNet"]

log = logging.getLogger(__name__)

# Concurrent blob pulls from peers: each holds one chunk in memory and one temp file.
BLOB_PULLS_MAX = 4
# Offers and pulls waiting or running: beyond it, offers are refused (the offering node's peers or
# a later GET still get the blob to us), so a flood of offers cannot pile up tasks.
BLOB_TASKS_MAX = 256
# One chunk request (1 MiB): generous for a loaded LAN peer.
CHUNK_TIMEOUT_S = 10.0
# How often stray blob files (no record, older than the store's grace period) are collected.
GC_INTERVAL_S = 3600.0


class BlobError(Exception):
    """A blob request the node refuses; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BlobNet:
    """See the module docstring. One per node; blobs of every channel share one store."""

    def __init__(
        self,
        name: str,
        org: str,
        transport: PeerTransport,
        store: BlobStore,
        channels: Mapping[str, ChannelPrivateData],
        default_channel: str,
    ) -> None:
        self.name = name
        self.default_channel = default_channel
        self.org = org
        self.store = store
        self._transport = transport
        self._channels = channels
        self._pulls = asyncio.Semaphore(BLOB_PULLS_MAX)
        self._tasks: set[asyncio.Task[None]] = set()
        self._gc: asyncio.Task[None] | None = None

    def register(self) -> None:
        self._transport.register_request_handler(wire.BLOB_OFFER, self.on_offer)
        self._transport.register_request_handler(wire.BLOB_CHUNK, self.on_chunk)

    async def start(self) -> None:
        self._gc = asyncio.create_task(self._gc_loop(), name=f"{self.name}-blob-gc")

    async def stop(self) -> None:
        await cancel_and_wait([*self._tasks, *([self._gc] if self._gc else [])])
        self._tasks.clear()

    @property
    def max_blob_bytes(self) -> int:
        return self.store.max_blob_bytes

    def msp(self, channel: str) -> MSP:
        cfg = self.channel(channel).config()
        if cfg is None:
            raise BlobError(404, f"channel {channel} has no configuration yet")
        return msp_from_config(cfg)

    # -- membership ------------------------------------------------------------------------------

    def channel(self, name: str) -> ChannelPrivateData:
        ch = self._channels.get(name)
        if ch is None:
            raise BlobError(404, f"this node does not serve channel {name!r}")
        return ch

    def check_collection(self, channel: str, ns: str, collection: str, caller_org: str) -> ChannelPrivateData:
        """The channel, if the collection exists and both this node's and the caller's org are members."""
        ch = self.channel(channel)
        c = ch.collection(ns, collection)
        if c is None:
            raise BlobError(404, f"contract {ns!r} has no collection {collection!r} on channel {channel}")
        if self.org not in c.member_orgs:
            raise BlobError(403, f"this node's organisation {self.org} is not a member of {ns}/{collection}")
        if caller_org not in c.member_orgs:
            raise BlobError(403, f"organisation {caller_org} is not a member of {ns}/{collection}")
        return ch

    def _member_peers(self, ch: ChannelPrivateData, ns: str, collection: str) -> list[str]:
        return member_peers(self._transport, ch, ns, collection)

    # -- upload ----------------------------------------------------------------------------------

    async def receive(
        self, channel: str, ns: str, collection: str, digest: bytes, size: int, chunks: AsyncIterator[bytes]
    ) -> bool:
        """Store an uploaded blob (caller checked with :meth:`check_collection`); False if it was
        already stored. BlobError 413 over the limit, 400 on a wrong size or hash."""
        ch = self.channel(channel)
        if size > self.store.max_blob_bytes:
            raise BlobError(413, f"blob of {size} bytes exceeds the limit of {self.store.max_blob_bytes} bytes")
        meta = ch.state.blob_meta(digest)
        if meta is not None and self.store.has(digest):
            if meta[:2] != (ns, collection):  # one blob, one collection: its members and its purge
                raise BlobError(409, f"this blob is already stored in another collection of {meta[0]}")
            return False
        loop = asyncio.get_running_loop()
        w = self.store.writer()
        try:
            async for chunk in chunks:
                await loop.run_in_executor(None, w.write, chunk)
            if w.size != size:
                raise BlobError(400, f"body of {w.size} bytes, Content-Length said {size}")
            await loop.run_in_executor(None, w.commit, digest)
        except BlobTooLarge as exc:
            raise BlobError(413, str(exc)) from exc
        except DigestMismatch as exc:
            raise BlobError(400, f"blob does not match its name: {exc}") from exc
        finally:
            w.abort()  # no-op after a commit
        c = ch.collection(ns, collection)
        # As private data committed in the tip block: purged when block tip + block_to_live commits.
        expiry = ch.ledger.height - 1 + c.block_to_live if c is not None and c.block_to_live else 0
        ch.state.register_blob(digest, ns, collection, size, expiry)
        self._spawn(self._offer_all(channel, ns, collection, digest, size, expiry))
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _offer_all(self, channel: str, ns: str, collection: str, digest: bytes, size: int, expiry: int) -> None:
        ch = self.channel(channel)
        payload = [channel, ns, collection, digest, size, expiry]
        for peer in self._member_peers(ch, ns, collection):
            try:
                wire.unpack_answer(await self._transport.request(peer, wire.BLOB_OFFER, payload, CHUNK_TIMEOUT_S))
            except (wire.RemoteRefusal, P2PError, TimeoutError) as exc:
                log.info("blob offer to %s not taken: %s", peer, exc)

    # -- download --------------------------------------------------------------------------------

    async def ensure(self, channel: str, ns: str, collection: str, digest: bytes) -> int:
        """The size of a blob of ``collection`` held here, pulled from member peers if missing.
        BlobError 404 if no member has it."""
        ch = self.channel(channel)
        meta = ch.state.blob_meta(digest)
        if meta is not None and self.store.has(digest):
            if meta[:2] != (ns, collection):
                raise BlobError(404, f"no blob {digest.hex()} in {ns}/{collection}")
            return meta[2]
        for peer in self._member_peers(ch, ns, collection):
            if await self._pull(peer, channel, ns, collection, digest, None, None):
                meta = ch.state.blob_meta(digest)
                assert meta is not None
                return meta[2]
        raise BlobError(404, f"no blob {digest.hex()} in {ns}/{collection}")

    def chunks(self, digest: bytes) -> Iterator[bytes]:
        """The blob's bytes in chunks (re-hashed as read; CorruptionError at the end on a mismatch)."""
        try:
            return self.store.open_stream(digest)
        except NotFound as exc:
            raise BlobError(404, str(exc)) from exc

    # -- between nodes ---------------------------------------------------------------------------

    def _peer_org(self, peer: str) -> str | None:
        info = self._transport.peer_info(peer)
        return None if info is None else info.org

    async def on_offer(self, peer: str, payload: Any) -> list[Any]:
        """``wire.BLOB_OFFER``: a member node stored a blob; pull it if we are a member too."""
        try:
            channel, ns, coll, digest, size, expiry = payload
            ok = all(isinstance(x, str) for x in (channel, ns, coll)) and isinstance(digest, bytes)
            ok = ok and len(digest) == 32 and all(type(x) is int and x >= 0 for x in (size, expiry))
        except (TypeError, ValueError):
            ok = False
        org = self._peer_org(peer)
        if not ok or org is None:
            return wire.err(wire.ErrorCode.BAD_REQUEST, "malformed blob offer")
        try:
            self.check_collection(channel, ns, coll, org)
        except BlobError as exc:
            return wire.err(wire.ErrorCode.UNAUTHORIZED, exc.message)
        if size > self.store.max_blob_bytes:
            return wire.err(wire.ErrorCode.TOO_LARGE, f"blob of {size} bytes exceeds this node's limit")
        if not self.store.has(digest):
            if len(self._tasks) >= BLOB_TASKS_MAX:
                return wire.err(wire.ErrorCode.BUSY, "too many blob transfers in progress")
            self._spawn(self._pull(peer, channel, ns, coll, digest, size, expiry))
        return wire.ok()

    async def on_chunk(self, peer: str, payload: Any) -> list[Any]:
        """``wire.BLOB_CHUNK`` ``[channel, ns, collection, digest, offset]`` →
        ``ok(bytes, size, expiry)``, only to nodes of the blob's collection's member orgs."""
        try:
            channel, ns, coll, digest, offset = payload
            ch = self.channel(channel)
            meta = ch.state.blob_meta(digest) if isinstance(digest, bytes) else None
        except (TypeError, ValueError, BlobError):
            return wire.err(wire.ErrorCode.BAD_REQUEST, "malformed blob chunk request")
        org = self._peer_org(peer)
        if meta is None or meta[:2] != (ns, coll) or type(offset) is not int or org is None:
            return wire.err(wire.ErrorCode.NOT_FOUND, "no such blob here")
        if not (ch.is_member(ns, coll) and ch.is_member(ns, coll, org)):
            return wire.err(wire.ErrorCode.UNAUTHORIZED, f"{org} is not a member of {ns}/{coll}")
        try:
            data = await asyncio.get_running_loop().run_in_executor(
                None, self.store.read_at, digest, offset, CHUNK_BYTES
            )
        except (NotFound, StorageError) as exc:
            return wire.err(wire.ErrorCode.NOT_FOUND, str(exc))
        return wire.ok(data, meta[2], meta[3])

    async def _pull(
        self, peer: str, channel: str, ns: str, coll: str, digest: bytes, size: int | None, expiry: int | None
    ) -> bool:
        """Fetch a blob from ``peer`` chunk by chunk; True once it is installed and recorded."""
        async with self._pulls:
            if self.store.has(digest) and self.channel(channel).state.blob_meta(digest) is not None:
                return True
            loop = asyncio.get_running_loop()
            w = self.store.writer()
            try:
                while size is None or w.size < size:
                    req = [channel, ns, coll, digest, w.size]
                    ans = await self._transport.request(peer, wire.BLOB_CHUNK, req, CHUNK_TIMEOUT_S)
                    data, total, exp = wire.unpack_answer(ans)
                    if not isinstance(data, bytes) or type(total) is not int or type(exp) is not int:
                        raise ValueError("malformed chunk answer")
                    size, expiry = (total, exp) if size is None else (size, expiry)
                    if not data:
                        break
                    await loop.run_in_executor(None, w.write, data)
                await loop.run_in_executor(None, w.commit, digest)
            except (wire.RemoteRefusal, P2PError, TimeoutError, ValueError, StorageError) as exc:
                log.info("blob %s from %s not pulled: %s", digest.hex()[:16], peer, exc)
                return False
            finally:
                w.abort()
            assert size is not None and expiry is not None
            self.channel(channel).state.register_blob(digest, ns, coll, size, expiry)
            log.info("blob %s of %s/%s pulled from %s", digest.hex()[:16], ns, coll, peer)
            return True

    # -- purge -----------------------------------------------------------------------------------

    def purge(self, channel: str, digests: list[bytes]) -> None:
        """Delete blobs whose block-to-live ran out (their records went with the block's batch)."""
        for d in digests:
            self.store.delete(d)
        if digests:
            log.info("channel %s: %d blob(s) purged after their block-to-live", channel, len(digests))

    async def _gc_loop(self) -> None:
        while True:
            await asyncio.sleep(GC_INTERVAL_S)
            referenced: set[bytes] = set()
            for ch in self._channels.values():
                referenced |= ch.state.blob_digests()
            removed = await asyncio.get_running_loop().run_in_executor(None, self.store.collect, referenced)
            if removed:
                log.info("blob store: %d stray file(s) collected", removed)
