"""JSON-RPC, WebSocket and operations over TLS on a real network, with signed state reads.

A two-organisation network made by ``network init --rpc-tls``: every node serves HTTPS/WSS with its
node certificate. Through the CLI (``--dir`` and ``--cacert``), the SDK and curl, transactions are
invoked and queried, a subscription runs over WSS and ``/healthz`` answers over HTTPS; plain HTTP
gets no answer. State reads need a signed read: an unsigned one is refused, a member client's is
served, and a user revoked with ``secprivnode channel revoke`` is refused from the block that
publishes the CRL.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from framework import CityTest, RpcFailure, TestNode, shared_network, wait_until

from crypto.encoding import decode
from secprivnode.client import Client, ClientIdentity, ClientTLS, TransportError, Unauthenticated
from secprivnode.signed_read import auth_to_json, sign_read

pytestmark = pytest.mark.functional


class TlsNet(CityTest):
    """Two orgs, one node each, RPC over TLS; the module's tests drive it."""

    num_orgs = 2
    rpc_tls = True

    def asset_id(self, what: str) -> str:
        return f"{what}-{self.rng.randrange(1 << 32):08x}"

    @property
    def bundle(self) -> str:
        return str(self.dir / "crypto" / "ca-bundle.pem")


@pytest.fixture(scope="module")
def net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNet]:
    yield from shared_network(TlsNet(), request, tmp_path_factory)  # type: ignore[misc]


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def test_endpoints_speak_only_tls(net: TlsNet) -> None:
    node = net.nodes[0]
    assert node.url.startswith("https://") and node.spec.ops_url.startswith("https://")
    net.log.info("/healthz and /metrics over HTTPS")
    status, body = node.ops_get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert node.ops_get("/metrics")[0] == 200
    net.log.info("plain HTTP to the RPC port gets no HTTP answer")
    conn = http.client.HTTPConnection("127.0.0.1", _port(node.url), timeout=10)
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.request("POST", "/", body=b'{"jsonrpc":"2.0","id":1,"method":"chain_height"}')
            conn.getresponse()
    finally:
        conn.close()
    net.log.info("an SDK client that trusts only the system CAs refuses the node")
    with Client(node.url) as c, pytest.raises(TransportError, match="certificate"):
        c.height()


def test_cli_invokes_queries_and_reads_over_https(net: TlsNet) -> None:
    asset = net.asset_id("tram")
    target = ["--dir", str(net.dir), "--identity", "council/client1"]
    net.log.info("tx invoke through the CLI (CAs from the network directory)")
    done = net.cli(
        "tx", "invoke", *target, "--contract", "assets", "--fn", "create", "--args", json.dumps([asset, "council"])
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["code"] == "VALID"
    net.sync_blocks()
    net.log.info("tx query on the other node, with an explicit --url and --cacert")
    other = net.nodes[1]
    explicit = ["--url", other.url, "--cacert", net.bundle, "--dir", str(net.dir), "--identity", "transport/client1"]
    done = net.cli("tx", "query", *explicit, "--contract", "assets", "--fn", "read", "--args", json.dumps([asset]))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["value"]["owner"] == "council"
    net.log.info("a signed state read through the CLI")
    done = net.cli("state", "get", *explicit, "--contract", "assets", f"asset/{asset}")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"][0] >= 1
    done = net.cli("state", "history", *explicit, "--contract", "assets", f"asset/{asset}")
    assert done.returncode == 0 and len(json.loads(done.stdout)) == 1, done.stderr
    net.log.info("the CLI refuses a node its --cacert does not vouch for")
    wrong = net.dir / "crypto" / "transport" / "ca" / "ca.pem"  # council-node1 is certified by council's CA
    done = net.cli("chain", "height", "--url", net.nodes[0].url, "--cacert", str(wrong))
    assert done.returncode != 0 and "certificate" in done.stderr


def test_sdk_invokes_queries_and_subscribes_over_wss(net: TlsNet) -> None:
    council = net.nodes[0]
    me = net.identity("council")
    asset = net.asset_id("bus")
    with council.client(me) as c:
        net.log.info("subscribe to tx events over wss://, then invoke over https://")
        with c.subscribe(["tx"]) as events:
            created = c.invoke("assets", "create", asset, "council", {"line": "4"})
            assert created.valid
            seen = next(
                ev
                for _, ev in zip(range(50), events, strict=False)
                if ev["data"]["tx_id"] == "0x" + created.tx_id.hex()
            )
            assert seen["kind"] == "tx" and seen["data"]["code"] == "VALID"
        record = decode(c.query("assets", "read", asset)["payload"])
        assert record["value"] == {"line": "4"}
        state = c.state_get("assets", f"asset/{asset}")
        assert state is not None and decode(state["value"])["owner"] == "council"
        assert [r["key"] for r in c.state_get_range("assets", f"asset/{asset}", f"asset/{asset}\x00")] == [
            f"asset/{asset}"
        ]


def test_curl_with_cacert(net: TlsNet) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    node = net.nodes[1]
    body = '{"jsonrpc":"2.0","id":1,"method":"chain_height","params":{}}'
    net.log.info("curl --cacert %s %s -d %s", net.bundle, node.url, body)
    out = subprocess.run(
        [curl, "-sS", "--cacert", net.bundle, node.url, "-H", "Content-Type: application/json", "-d", body],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] >= 1
    out = subprocess.run([curl, "-sS", node.url, "-d", body], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0, "curl without --cacert must not trust the node"


def _config_sequence(node: TestNode) -> int:
    return int(node.rpc.config_get()["sequence"])


def _config_advanced(node: TestNode, before: int) -> bool:
    return _config_sequence(node) > before


def test_state_reads_are_access_checked(net: TlsNet) -> None:
    council = net.nodes[0]
    asset = net.asset_id("lamp")
    with council.client(net.identity("council")) as c:
        assert c.invoke("assets", "create", asset, "council").valid
    net.log.info("an unsigned state_get is refused")
    with pytest.raises(RpcFailure) as info:
        council.rpc.state_get(contract="assets", key=f"asset/{asset}")
    assert info.value.code == -32010 and info.value.data == {"reason": "missing"}

    client2 = net.identity("council", "client2")
    net.log.info("council/client2 reads while it is a member")
    with council.client(client2) as c:
        assert c.state_get("assets", f"asset/{asset}") is not None
    before = _config_sequence(council)
    net.log.info("revoke council/client2 with `secprivnode channel revoke`")
    done = net.cli("channel", "revoke", "--dir", str(net.dir), "--identity", "council/client2")
    assert done.returncode == 0, done.stderr
    for node in net.nodes:
        wait_until(partial(_config_advanced, node, before), what=f"{node.name} has the CRL")
        net.log.info("%s refuses client2's signed read", node.name)
        with node.client(client2) as c, pytest.raises(Unauthenticated) as refused:
            c.state_get("assets", f"asset/{asset}")
        assert refused.value.code == -32010 and refused.value.data["reason"] == "revoked"
        with node.client(net.identity("council")) as c:
            assert c.state_get("assets", f"asset/{asset}") is not None, "council/client1 still reads"
    net.log.info("a signed read of the wrong channel is refused as such")
    me = net.identity("transport")
    with Client(net.nodes[1].url, me, tls=ClientTLS.from_files([net.bundle])) as c:
        with pytest.raises(Unauthenticated) as wrong:
            c.call("state_get", _signed_params(me, "elsewhere", asset, channel=net.channel))
        assert wrong.value.data["reason"] == "wrong_channel"


def _signed_params(me: ClientIdentity, signed_for: str, asset: str, *, channel: str) -> dict[str, Any]:
    read = sign_read(me.cert_der, me.sign, signed_for, "state_get", ("assets", f"asset/{asset}"))
    return {"contract": "assets", "key": f"asset/{asset}", "channel": channel, "auth": auth_to_json(read)}
