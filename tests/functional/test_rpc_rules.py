"""JSON-RPC 2.0 rules, case by case, against a real node over HTTP and WebSocket.

Each case sends raw bytes (not the SDK) so that what is checked is exactly what a third-party
client sees: status codes, error codes, ids, and the absence of a response where the
specification (https://www.jsonrpc.org/specification, §4.1 notifications, §5.1 error codes,
§6 batches) says there is none. One network serves the module; the cases only read, except the
subscription and metrics cases, which commit their own transactions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from framework import CityTest, TestNode, http_post, shared_network, wait_until
from prometheus_client.parser import text_string_to_metric_families

from secprivnode.client import AsyncClient, ClientIdentity
from secprivnode.signed_read import auth_to_json, sign_read

pytestmark = pytest.mark.functional

# The method table of docs/rpc.md; rpc.discover must describe each of them.
DOCUMENTED_METHODS = {
    "node_status",
    "node_peers",
    "raft_status",
    "chain_height",
    "chain_getBlockByNumber",
    "chain_getBlockByHash",
    "chain_getTransaction",
    "chain_getTxProof",
    "state_get",
    "state_getRange",
    "state_getHistory",
    "tx_submit",
    "tx_submitAndWait",
    "tx_query",
    "tx_status",
    "contract_list",
    "config_get",
    "config_update",
    "subscribe",
    "unsubscribe",
    "rpc.discover",
}
# The node's request body limit (docs/rpc.md, Limits).
MAX_BODY_BYTES = 4 * 1024 * 1024


class RpcNet(CityTest):
    """Three orgs, one node each; the module's tests drive it."""

    def post(self, body: bytes | str | Any, node: TestNode | None = None) -> tuple[int, Any]:
        """POST ``body`` (bytes as is, anything else as JSON); return (status, decoded body or None)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, reply = http_post((node or self.nodes[0]).url, raw)
        return status, (json.loads(reply) if reply else None)


@pytest.fixture(scope="module")
def net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RpcNet]:
    yield from shared_network(RpcNet(), request, tmp_path_factory)  # type: ignore[misc]


def _auth(net: RpcNet, method: str, *params: Any, channel: str | None = None) -> dict[str, Any]:
    """The ``auth`` of a read signed by council/client1."""
    me = net.identity("council")
    return auth_to_json(sign_read(me.cert_der, me.sign, channel or net.channel, method, params))


def _req(method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
    r: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        r["params"] = params
    return r


def _error(reply: Any, code: int, id_: Any) -> dict[str, Any]:
    assert isinstance(reply, dict), reply
    assert set(reply) == {"jsonrpc", "error", "id"}, reply
    assert reply["jsonrpc"] == "2.0" and reply["id"] == id_, reply
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    return dict(reply["error"])


def test_parse_error_has_null_id(net: RpcNet) -> None:
    net.log.info("a body that is not JSON")
    status, reply = net.post(b'{"jsonrpc": "2.0", "method": "chain_height", "params": "bar", "baz]')
    assert status == 200
    _error(reply, -32700, None)
    net.log.info("a batch that is not JSON")
    _, reply = net.post(b'[{"jsonrpc": "2.0", "method": "chain_height", "id": "1"},{"jsonrpc": "2.0", "method"]')
    _error(reply, -32700, None)


def test_invalid_requests(net: RpcNet) -> None:
    net.log.info("method is not a string")
    _, reply = net.post({"jsonrpc": "2.0", "method": 1, "params": "bar"})
    _error(reply, -32600, None)
    net.log.info("wrong protocol version, id echoed")
    _, reply = net.post({"jsonrpc": "1.0", "method": "chain_height", "id": 7})
    _error(reply, -32600, 7)
    net.log.info("params neither object nor array")
    _, reply = net.post(_req("chain_height", "city", id_="p"))
    _error(reply, -32600, "p")
    net.log.info("an empty batch gets one error object, not an array")
    _, reply = net.post([])
    _error(reply, -32600, None)
    net.log.info("a batch of non-requests gets one error per entry")
    _, reply = net.post([1, 2, 3])
    assert isinstance(reply, list) and len(reply) == 3
    for r in reply:
        _error(r, -32600, None)
    net.log.info("a batch over the 100-call limit")
    _, reply = net.post([_req("chain_height", id_=i) for i in range(101)])
    _error(reply, -32600, None)


def test_method_not_found(net: RpcNet) -> None:
    _, reply = net.post(_req("chain_mine", id_="abc"))
    _error(reply, -32601, "abc")
    net.log.info("subscriptions exist only on the WebSocket")
    _, reply = net.post(_req("subscribe", {"kinds": ["block"]}, id_=2))
    _error(reply, -32601, 2)


def test_invalid_params_by_name_and_position(net: RpcNet) -> None:
    cases: list[tuple[Any, str | None]] = [
        ({"number": "x"}, "number"),  # wrong type, by name
        ({}, "number"),  # missing, by name
        ({"number": 0, "bogus": 1}, "bogus"),  # unexpected, by name
        (["x"], "number"),  # wrong type, by position
        ([0, "city", 5], None),  # too many, by position
        ({"number": -1}, "number"),
    ]
    for params, named in cases:
        net.log.info("chain_getBlockByNumber %s", json.dumps(params))
        _, reply = net.post(_req("chain_getBlockByNumber", params, id_=5))
        err = _error(reply, -32602, 5)
        if named is not None:
            assert err["data"]["param"] == named and named in err["message"], err
    net.log.info("bytes must be 0x-prefixed lowercase hex")
    _, reply = net.post(_req("chain_getBlockByHash", {"hash": "0x" + "AB" * 32}, id_=6))
    assert _error(reply, -32602, 6)["data"]["param"] == "hash"
    net.log.info("the same call, well formed, by name and by position")
    _, by_name = net.post(_req("chain_getBlockByNumber", {"number": 0}, id_=7))
    _, by_pos = net.post(_req("chain_getBlockByNumber", [0, net.channel], id_=8))
    assert by_name["result"] == by_pos["result"] and by_name["result"]["number"] == 0


def test_ids_are_echoed_exactly(net: RpcNet) -> None:
    for id_ in ("x-1", 42, None, "", 2**53):
        _, reply = net.post(_req("chain_height", id_=id_))
        assert reply["id"] == id_ and isinstance(reply["result"], int), reply


def test_notifications_get_no_response(net: RpcNet) -> None:
    net.log.info("one notification: no body")
    status, reply = net.post({"jsonrpc": "2.0", "method": "chain_height"})
    assert (status, reply) == (204, None)
    net.log.info("a notification of an unknown method is not answered either")
    status, reply = net.post({"jsonrpc": "2.0", "method": "no_such_method", "params": [1]})
    assert (status, reply) == (204, None)
    net.log.info("a batch of notifications only: no body")
    status, reply = net.post(
        [{"jsonrpc": "2.0", "method": "chain_height"}, {"jsonrpc": "2.0", "method": "node_status"}]
    )
    assert (status, reply) == (204, None)


def test_mixed_batch(net: RpcNet) -> None:
    batch = [
        _req("chain_height", id_="1"),
        {"jsonrpc": "2.0", "method": "node_status"},  # notification: no entry in the answer
        {"foo": "boo"},
        _req("chain_mine", {"name": "myself"}, id_="5"),
        _req("chain_getBlockByNumber", {"number": "zero"}, id_="7"),
        _req("raft_status", id_="9"),
    ]
    status, reply = net.post(batch)
    assert status == 200 and isinstance(reply, list)
    by_id: dict[Any, list[dict[str, Any]]] = {}
    for r in reply:
        by_id.setdefault(r["id"], []).append(r)
    assert sorted(by_id, key=str) == sorted(["1", None, "5", "7", "9"], key=str), reply
    assert len(reply) == 5
    assert isinstance(by_id["1"][0]["result"], int)
    _error(by_id[None][0], -32600, None)
    _error(by_id["5"][0], -32601, "5")
    _error(by_id["7"][0], -32602, "7")
    assert by_id["9"][0]["result"]["leader"] == net.leader().name


def test_oversize_body_is_refused_and_the_node_keeps_serving(net: RpcNet) -> None:
    node = net.nodes[1]
    body = json.dumps(_req("chain_height", {"pad": "x" * MAX_BODY_BYTES})).encode()
    net.log.info("a %d-byte request to %s", len(body), node.name)
    status, reply = net.post(body, node)
    assert status == 413
    _error(reply, -32600, None)
    net.log.info("the node still answers, on new connections and in batches")
    for _ in range(3):
        assert net.post(_req("chain_height"), node)[1]["result"] >= 1
    assert node.healthy()


def test_unknown_channel(net: RpcNet) -> None:
    for method, params in (
        ("chain_height", {"channel": "nope"}),
        (
            "state_get",
            {
                "contract": "assets",
                "key": "k",
                "channel": "nope",
                "auth": _auth(net, "state_get", "assets", "k", channel="nope"),
            },
        ),
        ("raft_status", ["nope"]),
    ):
        _, reply = net.post(_req(method, params, id_=method))
        _error(reply, -32002, method)


def test_not_found(net: RpcNet) -> None:
    node = net.nodes[0]
    height = node.height()
    missing = "0x" + "ab" * 32
    for method, params in (
        ("chain_getBlockByNumber", {"number": height + 1000}),
        ("chain_getBlockByHash", {"hash": missing}),
        ("chain_getTransaction", {"tx_id": missing}),
        ("chain_getTxProof", {"tx_id": missing}),
    ):
        net.log.info("%s of something that does not exist", method)
        _, reply = net.post(_req(method, params, id_=method))
        _error(reply, -32001, method)
    net.log.info("an absent key is a null result, not an error")
    auth = _auth(net, "state_get", "assets", "asset/never")
    _, reply = net.post(_req("state_get", {"contract": "assets", "key": "asset/never", "auth": auth}))
    assert reply["result"] is None
    _, reply = net.post(_req("tx_status", {"tx_id": missing}))
    assert reply["result"]["status"] == "unknown"


def test_state_reads_need_a_signed_read(net: RpcNet) -> None:
    for method, params in (
        ("state_get", {"contract": "assets", "key": "asset/x"}),
        ("state_getRange", {"contract": "assets", "start": "", "end": ""}),
        ("state_getHistory", {"contract": "assets", "key": "asset/x"}),
    ):
        net.log.info("%s without auth is refused with -32010", method)
        _, reply = net.post(_req(method, params, id_=method))
        assert _error(reply, -32010, method)["data"] == {"reason": "missing"}
    net.log.info("the same signed read twice: the second is a replay")
    auth = _auth(net, "state_get", "assets", "asset/x")
    _, first = net.post(_req("state_get", {"contract": "assets", "key": "asset/x", "auth": auth}))
    assert first["result"] is None
    _, again = net.post(_req("state_get", {"contract": "assets", "key": "asset/x", "auth": auth}))
    assert _error(again, -32010, 1)["data"] == {"reason": "replay"}
    net.log.info("a node identity may not read a contract's state (default read policy)")
    node_dir = net.dir / "crypto" / "council" / "nodes" / net.nodes[0].name
    node_ident = ClientIdentity.load(node_dir / "cert.pem", node_dir / "key.pem")
    read = sign_read(node_ident.cert_der, node_ident.sign, net.channel, "state_get", ("assets", "asset/x"))
    _, denied = net.post(_req("state_get", {"contract": "assets", "key": "asset/x", "auth": auth_to_json(read)}))
    assert _error(denied, -32008, 1)["data"] == {"reason": "read_policy"}
    read = sign_read(node_ident.cert_der, node_ident.sign, net.channel, "state_get", ("_config", "channel"))
    _, config = net.post(_req("state_get", {"contract": "_config", "key": "channel", "auth": auth_to_json(read)}))
    assert config["result"]["value"].startswith("0x"), "members, nodes included, may read _config"


def test_rpc_discover_lists_every_method(net: RpcNet) -> None:
    _, reply = net.post(_req("rpc.discover"))
    doc = reply["result"]
    assert doc["openrpc"].startswith("1.2")
    names = {m["name"] for m in doc["methods"]}
    assert names == DOCUMENTED_METHODS
    by_name = {m["name"]: m for m in doc["methods"]}
    assert [p["name"] for p in by_name["chain_getBlockByNumber"]["params"]] == ["number", "channel"]
    assert {m["name"] for m in doc["methods"] if m["x-identity"] == "signed-read"} == {
        "state_get",
        "state_getRange",
        "state_getHistory",
    }
    assert by_name["chain_getTxProof"]["x-identity"] == "none"


def test_websocket_subscription_receives_the_block(net: RpcNet) -> None:
    watcher, submitter = net.nodes[0], net.nodes[2]
    me = net.identity("health")

    async def scenario() -> tuple[dict[str, Any], Any]:
        async with AsyncClient(watcher.url) as w, AsyncClient(submitter.url, me) as s:
            net.log.info("subscribe to blocks on %s", watcher.name)
            async with await w.subscribe(["block"]) as events:
                net.log.info("submit through %s", submitter.name)
                r = await s.invoke("assets", "create", f"ws-{net.rng.randrange(1 << 32):08x}", "health")
                assert r.valid, r

                async def the_block() -> dict[str, Any]:
                    async for ev in events:
                        if ev["kind"] == "block" and ev["data"]["number"] == r.block_number:
                            return ev
                    raise AssertionError("subscription ended")

                return await asyncio.wait_for(the_block(), 60.0), r

    ev, r = asyncio.run(scenario())
    net.log.info("block event %s", ev["data"])
    assert ev["channel"] == net.channel
    assert ev["data"]["tx_count"] >= 1 and ev["data"]["valid"] >= 1
    assert ev["data"]["hash"] == watcher.rpc.chain_getBlockByNumber(number=r.block_number)["hash"]


def test_websocket_carries_json_rpc(net: RpcNet) -> None:
    node = net.nodes[2]
    ws_url = node.url + "ws"

    async def scenario() -> list[Any]:
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:

            async def ask(text: str) -> Any:
                await ws.send_str(text)
                return json.loads(await asyncio.wait_for(ws.receive_str(), 30.0))

            answers = [
                await ask(json.dumps(_req("chain_height", id_="h"))),
                await ask(json.dumps([_req("node_status", id_=1), {"jsonrpc": "2.0", "method": "chain_height"}])),
                await ask('{"jsonrpc": "2.0", "method"'),
                await ask(json.dumps(_req("subscribe", {"kinds": ["weather"]}, id_=3))),
                await ask(json.dumps(_req("subscribe", {"kinds": ["tx"]}, id_=4))),
            ]
            sub_id = answers[-1].get("result")
            for id_ in (5, 6):  # the second unsubscribe finds nothing
                answers.append(await ask(json.dumps(_req("unsubscribe", {"subscription": sub_id}, id_=id_))))
            return answers

    height, batch, parse, bad_sub, sub, unsub, unsub_again = asyncio.run(scenario())
    net.log.info("over the WebSocket: a call, a batch, a parse error, a bad and a good subscription")
    assert height["id"] == "h" and height["result"] == node.height()
    assert len(batch) == 1 and batch[0]["id"] == 1 and batch[0]["result"]["name"] == node.name
    _error(parse, -32700, None)
    assert _error(bad_sub, -32602, 3)["data"]["param"] == "kinds"
    assert sub["id"] == 4 and isinstance(sub["result"], str)
    assert (unsub["id"], unsub["result"]) == (5, True)
    assert (unsub_again["id"], unsub_again["result"]) == (6, False)


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_healthz_and_metrics(net: RpcNet) -> None:
    node = net.nodes[1]
    status, body = node.ops_get("/healthz")
    assert status == 200, body
    net.log.info("healthz: %s", body.strip())

    def counters() -> tuple[float, float, float]:
        _, text = node.ops_get("/metrics")
        blocks = _samples(text, "secprivnode_blocks_committed_total")
        txs = _samples(text, "secprivnode_transactions_total")
        height = _samples(text, "secprivnode_block_height")
        ch = (("channel", net.channel),)
        return blocks.get(ch, 0.0), txs.get((("channel", net.channel), ("code", "VALID")), 0.0), height[ch]

    blocks_before, valid_before, _ = counters()
    net.log.info("commit one transaction through %s", node.name)
    with node.client(net.identity("transport")) as c:
        r = c.invoke("assets", "create", f"metric-{net.rng.randrange(1 << 32):08x}", "transport")
    assert r.valid
    assert r.block_number is not None

    def moved() -> bool:
        blocks, valid, height = counters()
        return blocks >= blocks_before + 1 and valid >= valid_before + 1 and height >= r.block_number + 1  # type: ignore[operator]

    wait_until(moved, what="block and transaction counters to count the commit")
    assert counters()[2] == node.height()  # nothing else commits in this module meanwhile
