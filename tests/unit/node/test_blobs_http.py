"""``PUT``/``GET /blobs/{sha256}`` on a live aiohttp server over a real ledger and blob store:
signed headers, membership of caller and node, limits, hash checks, and block-to-live purge."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pipeline_kit import NOW, Chain, Pki, channel_config

from secprivnode.blobclient import sign_request
from secprivnode.blobnet import BlobNet
from secprivnode.client import ClientIdentity
from secprivnode.pipeline.privdata import ChannelPrivateData
from secprivnode.rpc.blobs import AUTH_SKEW_MS, add_blob_routes
from secprivnode.rpc.server import run_rpc_server
from storage.blobstore import BlobStore
from storage.model import CollectionConfig, ContractDefinition

PAIR = CollectionConfig("assets", "pair", ("council", "transport"), 0, 1, 3)
MINE = CollectionConfig("assets", "mine", ("council",), 0, 1, 0)
LIMIT = 3 * 1024 * 1024
CLOCK_MS = (NOW + 100) * 1000


class NoPeers:
    """A transport with nobody connected: the node is alone, offers and pulls find no one."""

    def connected_peers(self) -> list[str]:
        return []

    def peer_info(self, node_id: str) -> None:
        return None

    def register_request_handler(self, kind: int, handler: Any) -> None:
        pass


class Site:
    def __init__(self, url: str, net: BlobNet, chain: Chain, http: aiohttp.ClientSession, clock: list[int]) -> None:
        self.url, self.net, self.chain, self.http, self.clock = url, net, chain, http, clock

    def who(self, ident: str) -> ClientIdentity:
        m = self.chain.pki[ident]
        return ClientIdentity(m.cert, m.key, m.identity.org, m.identity.name)

    async def put(
        self, ident: str, data: bytes, *, name: bytes | None = None, hdr: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        hdr = dict(hdr or {})
        digest = name or hashlib.sha256(data).digest()
        headers = sign_request(
            self.who(ident), "PUT", "city", hdr.pop("coll", "assets/pair"), digest, len(data), now_ms=self.clock[0]
        )
        headers |= hdr
        async with self.http.put(f"{self.url}blobs/{digest.hex()}", data=data, headers=headers) as r:
            return r.status, await r.json()

    async def get(self, ident: str, digest: bytes, coll: str = "assets/pair") -> tuple[int, bytes]:
        headers = sign_request(self.who(ident), "GET", "city", coll, digest, 0, now_ms=self.clock[0])
        async with self.http.get(f"{self.url}blobs/{digest.hex()}", headers=headers) as r:
            return r.status, await r.read()


async def _site(chain: Chain, org: str, tmp: Path, clock: list[int]) -> AsyncIterator[Site]:
    net = BlobNet(
        f"{org}-node1",
        org,
        NoPeers(),  # type: ignore[arg-type]
        BlobStore(tmp, max_blob_bytes=LIMIT, chunk_bytes=64 * 1024),
        {"city": ChannelPrivateData(chain.ledger, org)},
        "city",
    )
    from aiohttp import web

    app = web.Application()
    add_blob_routes(app, net, clock_ms=lambda: clock[0])
    runner, port = await run_rpc_server(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            yield Site(f"http://127.0.0.1:{port}/", net, chain, http, clock)
    finally:
        await net.stop()
        await runner.cleanup()


@pytest.fixture
def pchain(pki: Pki, tmp_path: Path) -> Any:
    c = Chain(
        pki,
        tmp_path / "ledger",
        channel_config(pki, contracts=(ContractDefinition("assets", "1.0", "ANY(node)"),), collections=(PAIR, MINE)),
    )
    yield c
    c.close()


@pytest.fixture
def clock() -> list[int]:
    return [CLOCK_MS]


@pytest.fixture
async def site(pchain: Chain, tmp_path: Path, clock: list[int]) -> AsyncIterator[Site]:
    async for s in _site(pchain, "council", tmp_path / "blobs", clock):
        yield s


async def test_put_then_get_streams_the_bytes(site: Site) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: several chunks each way
    digest = hashlib.sha256(data).digest()
    status, body = await site.put("council/alice", data)
    assert status == 201 and body == {
        "sha256": digest.hex(),
        "size": len(data),
        "channel": "city",
        "collection": "assets/pair",
    }
    assert (await site.put("council/alice", data))[0] == 200  # already stored
    assert site.net.store.has(digest)
    assert site.net.channel("city").state.blob_meta(digest) == ("assets", "pair", len(data), PAIR.block_to_live)
    assert await site.get("transport/alice", digest) == (200, data)  # any member org may read


async def test_wrong_hash_or_size_keeps_nothing(site: Site, tmp_path: Path) -> None:
    status, body = await site.put("council/alice", b"abc", name=b"\x11" * 32)
    assert status == 400 and "does not match" in body["error"]
    assert not site.net.store.has(b"\x11" * 32)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


async def test_limit_is_413_before_reading(site: Site) -> None:
    status, body = await site.put("council/alice", b"\x00" * (LIMIT + 1))
    assert status == 413 and "exceeds" in body["error"]


@pytest.mark.parametrize(
    ("who", "extra", "status", "message"),
    [
        ("outsider/eve", {}, 401, "unknown identity"),
        ("health/alice", {}, 403, "not a member"),
        ("council/alice", {"coll": "assets/ghost"}, 404, "no collection"),
        ("council/alice", {"X-Signature": "AAAA"}, 401, "signature"),
        ("council/alice", {"X-Nonce": "00"}, 400, "X-Nonce"),
        ("council/alice", {"X-Collection": "nocollection"}, 400, "contract/collection"),
    ],
)
async def test_refusals(site: Site, who: str, extra: dict[str, str], status: int, message: str) -> None:
    got, body = await site.put(who, b"payload", hdr=extra)
    assert got == status and message in body["error"]
    assert not site.net.store.has(hashlib.sha256(b"payload").digest())


async def test_replay_and_stale_timestamp(site: Site, clock: list[int]) -> None:
    data = b"once"
    digest = hashlib.sha256(data).digest()
    headers = sign_request(site.who("council/alice"), "PUT", "city", "assets/pair", digest, len(data), now_ms=clock[0])
    async with site.http.put(f"{site.url}blobs/{digest.hex()}", data=data, headers=headers) as r:
        assert r.status == 201
    async with site.http.put(f"{site.url}blobs/{digest.hex()}", data=data, headers=headers) as r:
        assert r.status == 401 and "nonce" in (await r.json())["error"]
    headers = sign_request(site.who("council/alice"), "GET", "city", "assets/pair", digest, 0, now_ms=clock[0])
    clock[0] += AUTH_SKEW_MS + 1
    async with site.http.get(f"{site.url}blobs/{digest.hex()}", headers=headers) as r:
        assert r.status == 401 and "timestamp" in (await r.json())["error"]


async def test_revoked_caller_is_403(site: Site, pchain: Chain) -> None:
    pchain.revoke("council/mallory")
    status, body = await site.put("council/mallory", b"x")
    assert status == 403 and "revoked" in body["error"]


async def test_non_member_node_refuses_and_stores_nothing(pchain: Chain, tmp_path: Path, clock: list[int]) -> None:
    async for s in _site(pchain, "health", tmp_path / "health-blobs", clock):
        status, body = await s.put("council/alice", b"secret scan")
        assert status == 403 and "this node's organisation" in body["error"]
        assert list(s.net.store.digests()) == []


async def test_unknown_blob_is_404(site: Site) -> None:
    assert (await site.get("council/alice", b"\x22" * 32))[0] == 404
    status, _ = await site.put("council/alice", b"in pair")
    assert status == 201
    assert (await site.get("council/alice", hashlib.sha256(b"in pair").digest(), "assets/other"))[0] == 404


async def test_block_to_live_purges_blobs(site: Site, pchain: Chain) -> None:
    data = b"expires"
    digest = hashlib.sha256(data).digest()
    assert (await site.put("council/alice", data))[0] == 201
    ch = site.net.channel("city")
    pchain.committer.private = ch
    for i in range(PAIR.block_to_live):
        assert ch.blobs_due == []
        pchain.commit([pchain.tx("council/alice", "put", f"k{i}", b"v", nodes=["council/council-node1"])])
    assert ch.blobs_due == [digest] and ch.state.blob_meta(digest) is None
    site.net.purge("city", ch.blobs_due)
    assert not site.net.store.has(digest)
