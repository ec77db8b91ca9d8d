"""RPC and operations over TLS: the node's listeners with ``rpc.tls``, the SDK's verification of
the node against the channel's CAs, and mutual TLS.

A real PKI (crypto.ca): two organisations' root CAs, a node certificate (SANs localhost and
127.0.0.1), client certificates; the in-memory node behind real aiohttp servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crypto.ca import CertificateAuthority, Role, write_identity
from secprivnode.client import AsyncClient, ClientIdentity, ClientTLS, TransportError
from secprivnode.config import NodeConfig, config_from_mapping
from secprivnode.metrics import NodeMetrics
from secprivnode.node import NodeStartError, rpc_tls_context
from secprivnode.ops import create_ops_app
from secprivnode.rpc.server import create_rpc_app, run_rpc_server

NOW = 1_767_000_000


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = root
        now = NOW - 3600
        self.cas = {org: CertificateAuthority.create(org, now=now) for org in ("council", "transport")}
        for org, ca in self.cas.items():
            (root / f"{org}-ca.pem").write_bytes(ca.cert_pem)
        self.bundle = root / "cas.pem"
        self.bundle.write_bytes(b"".join(ca.cert_pem for ca in self.cas.values()))
        key, pem = self.cas["council"].issue(
            "council-node1", Role.NODE, now=now, hosts=["localhost"], ips=["127.0.0.1"]
        )
        self.node_dir = write_identity(root / "node", key, pem)
        self.alice = self.user("council", "alice")

    def user(self, org: str, name: str, ca: CertificateAuthority | None = None) -> ClientIdentity:
        key, pem = (ca or self.cas[org]).issue(name, Role.CLIENT, now=NOW - 3600)
        return ClientIdentity.from_pem(pem, key.to_pem())

    def config(self, **tls: Any) -> NodeConfig:
        doc = {
            "node": {"name": "council-node1", "org": "council", "data_dir": "data"},
            "identity": {"cert": "node/cert.pem", "key": "node/key.pem"},
            "channels": [{"name": "city", "genesis": "city.block"}],
            "rpc": {"tls": {"enabled": True, **tls}},
        }
        return config_from_mapping(doc, self.root)

    def trust(self, identity: ClientIdentity | None = None) -> ClientTLS:
        return ClientTLS.from_files([self.bundle], identity)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


async def serve(app: Any, ctx: ssl.SSLContext | None) -> tuple[Any, int]:
    return await run_rpc_server(app, "127.0.0.1", 0, ssl_context=ctx)


@pytest.fixture
async def https(pki: Pki, fake: Any) -> AsyncIterator[str]:
    """JSON-RPC over TLS without client certificates, on https://127.0.0.1:<port>/."""
    runner, port = await serve(create_rpc_app(fake, metrics=NodeMetrics()), rpc_tls_context(pki.config()))
    try:
        yield f"https://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.fixture
async def mtls(pki: Pki, fake: Any) -> AsyncIterator[str]:
    """JSON-RPC requiring a client certificate issued by the council CA."""
    ctx = rpc_tls_context(pki.config(client_ca="council-ca.pem", min_version="1.3"))
    runner, port = await serve(create_rpc_app(fake), ctx)
    try:
        yield f"https://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_https_and_wss_verified_against_the_channel_cas(https: str, pki: Pki, fake: Any) -> None:
    async with AsyncClient(https, pki.alice, tls=pki.trust()) as c:
        async with c.subscribe(["tx"]) as events:
            assert c.ws_url.startswith("wss://")
            r = await c.invoke("kv", "put", "door-7", b"\x01")
            assert r.valid
            event = await asyncio.wait_for(events.__anext__(), 10)
            assert event["kind"] == "tx" and event["data"]["tx_id"] == "0x" + r.tx_id.hex()
        assert await c.state_get("kv", "door-7") == {"value": b"\x01", "version": [1, 0]}
        assert (await c.query("kv", "get", "door-7"))["payload"] == b"\x01"


async def test_trust_taken_from_the_channel_configuration(https: str, pki: Pki) -> None:
    from storage.model import BatchConfig, ChannelConfig, OrgConfig

    orgs = tuple(OrgConfig(org, ca.cert_der) for org, ca in pki.cas.items())
    config = ChannelConfig("city", 0, orgs, (), BatchConfig(), (), "MAJORITY(admin)")
    async with AsyncClient(https, tls=ClientTLS.from_channel_config(config)) as c:
        assert await c.height() == 1
    without_council = dataclasses.replace(config, orgs=orgs[1:])
    async with AsyncClient(https, tls=ClientTLS.from_channel_config(without_council)) as c:
        with pytest.raises(TransportError, match="certificate"):
            await c.height()


async def test_operations_over_https(pki: Pki, fake: Any) -> None:
    runner, port = await serve(create_ops_app(fake, NodeMetrics().registry), rpc_tls_context(pki.config()))
    try:
        ctx = pki.trust().context()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
            async with http.get(f"https://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200 and (await resp.json())["status"] == "ok"
            async with http.get(f"https://localhost:{port}/metrics") as resp:
                assert resp.status == 200
    finally:
        await runner.cleanup()


def _plain_post(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/", body=b'{"jsonrpc":"2.0","id":1,"method":"chain_height"}')
        conn.getresponse()
    finally:
        conn.close()


async def test_plain_http_is_refused_when_tls_is_on(https: str, pki: Pki) -> None:
    port = int(https.rsplit(":", 1)[1].rstrip("/"))
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        await asyncio.to_thread(_plain_post, port)
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientError):
            async with plain.post(f"http://127.0.0.1:{port}/", json={"jsonrpc": "2.0", "id": 1, "method": "x"}):
                pass
    async with AsyncClient(https, tls=pki.trust()) as c:  # the listener still serves TLS clients
        assert await c.height() == 1


async def test_client_refuses_a_node_not_certified_by_the_channel_cas(https: str, pki: Pki, tmp_path: Path) -> None:
    stranger = CertificateAuthority.create("council", now=NOW - 3600)  # same name, another key
    (tmp_path / "other.pem").write_bytes(stranger.cert_pem)
    for tls in (ClientTLS.from_files([tmp_path / "other.pem"]), None):  # None: the system's CAs
        async with AsyncClient(https, tls=tls) as c:
            with pytest.raises(TransportError, match="certificate"):
                await c.height()
    # Verified chain, wrong name: the node certificate does not name this host.
    async with AsyncClient(https.replace("127.0.0.1", "127.0.0.2"), tls=pki.trust()) as c:
        with pytest.raises(TransportError):
            await c.height()
    (tmp_path / "empty.pem").write_text("")
    with pytest.raises(ValueError, match="no PEM certificate"):
        ClientTLS.from_files([tmp_path / "empty.pem"])


async def test_mutual_tls_refuses_a_client_without_a_certificate(mtls: str, pki: Pki) -> None:
    async with AsyncClient(mtls, tls=pki.trust()) as c:
        with pytest.raises(TransportError):
            await c.height()
    outsider = pki.user("transport", "tom")  # a member, but not of the CA this node trusts for clients
    async with AsyncClient(mtls, outsider, tls=pki.trust(outsider)) as c:
        with pytest.raises(TransportError):
            await c.height()
    async with AsyncClient(mtls, pki.alice, tls=pki.trust(pki.alice)) as c:
        assert await c.height() == 1
        assert await c.state_get("kv", "nothing") is None


def test_tls_context_from_config(pki: Pki) -> None:
    assert rpc_tls_context(config_from_mapping({**_minimal(), "rpc": {}}, pki.root)) is None
    ctx = rpc_tls_context(pki.config(min_version="1.3"))
    assert ctx is not None and ctx.minimum_version is ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode is ssl.CERT_NONE
    with pytest.raises(NodeStartError, match=r"rpc\.tls"):
        rpc_tls_context(pki.config(cert="missing.pem", key="node/key.pem"))
    with pytest.raises(NodeStartError, match=r"rpc\.tls"):
        rpc_tls_context(pki.config(client_ca="node/key.pem"))  # not a CA bundle


def _minimal() -> dict[str, Any]:
    return {
        "node": {"name": "council-node1", "org": "council", "data_dir": "data"},
        "identity": {"cert": "node/cert.pem", "key": "node/key.pem"},
        "channels": [{"name": "city", "genesis": "city.block"}],
    }
