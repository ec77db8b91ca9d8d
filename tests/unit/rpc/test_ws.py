"""JSON-RPC over WebSocket: methods, subscriptions, unsubscribe, and the bounds on slow or greedy clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from secprivnode.api import Event
from secprivnode.client import ClientIdentity, build_proposal
from secprivnode.rpc.codec import proposal_to_hex, to_hex
from secprivnode.rpc.server import STATE_KEY, WS_CLOSE_SLOW_CONSUMER, RpcLimits


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


@pytest.fixture
def limits() -> RpcLimits:
    return RpcLimits(max_subscriptions_per_conn=3, ws_send_queue_max=4, max_ws_message_bytes=64 * 1024)


@pytest.fixture
def ident(tmp_path: Path, fakemod: Any) -> ClientIdentity:
    return ClientIdentity.load(*fakemod.make_identity(tmp_path, "council", "client", "carol"))


def put_params(ident: ClientIdentity, key: str) -> dict[str, Any]:
    p, sig = build_proposal(ident, "city", "kv", "put", [key, b"v"])
    return {"proposal": proposal_to_hex(p), "signature": to_hex(sig)}


async def rpc(ws: aiohttp.ClientWebSocketResponse, method: str, params: Any = None, id_: Any = 1) -> Any:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        msg["params"] = params
    await ws.send_json(msg)
    return await ws.receive_json(timeout=5)


def ws_url(server: Any) -> str:
    return server.url.replace("http", "ws", 1) + "ws"


async def test_methods_and_batches_over_ws(server: Any) -> None:
    async with server.http.ws_connect(ws_url(server)) as ws:
        assert await rpc(ws, "chain_height", id_="a") == {"jsonrpc": "2.0", "result": 1, "id": "a"}
        await ws.send_json([{"jsonrpc": "2.0", "method": "chain_height", "id": i} for i in range(3)])
        assert sorted(r["id"] for r in await ws.receive_json(timeout=5)) == [0, 1, 2]
        await ws.send_str("{broken")
        assert (await ws.receive_json(timeout=5))["error"]["code"] == -32700
        await ws.send_bytes(b"\x00")
        assert (await ws.receive_json(timeout=5))["error"]["code"] == -32700
        # a notification gets nothing: the next answer is for the next request
        await ws.send_json({"jsonrpc": "2.0", "method": "chain_height"})
        assert (await rpc(ws, "node_peers", id_=7))["id"] == 7


async def test_subscription_delivery_and_unsubscribe(server: Any, fake: Any, ident: ClientIdentity) -> None:
    async with server.http.ws_connect(ws_url(server)) as ws:
        sub = (await rpc(ws, "subscribe", {"kinds": ["block", "tx"]}))["result"]
        assert isinstance(sub, str)
        _, body = await server.post(
            {"jsonrpc": "2.0", "method": "tx_submit", "params": put_params(ident, "a"), "id": 1}
        )
        tx_id = body["result"]
        got = [await ws.receive_json(timeout=5) for _ in range(2)]
        assert all(g["method"] == "subscription" and g["params"]["subscription"] == sub and "id" not in g for g in got)
        events = {g["params"]["result"]["kind"]: g["params"]["result"] for g in got}
        assert events["block"]["channel"] == "city" and events["block"]["data"]["number"] == 1
        assert events["tx"]["data"] == {"tx_id": tx_id, "block_number": 1, "code": "VALID"}

        assert (await rpc(ws, "unsubscribe", [sub], id_=2))["result"] is True
        await wait_until(lambda: not fake.subscribers)
        assert (await rpc(ws, "unsubscribe", [sub], id_=3))["result"] is False
        await server.post({"jsonrpc": "2.0", "method": "tx_submit", "params": put_params(ident, "b"), "id": 2})
        # nothing arrives for the cancelled subscription: the next message is this response
        assert await rpc(ws, "chain_height", id_=4) == {"jsonrpc": "2.0", "result": 3, "id": 4}
    await wait_until(lambda: not server.app[STATE_KEY].sessions)


async def test_subscription_filtered_by_tx_id(server: Any, ident: ClientIdentity) -> None:
    wanted = put_params(ident, "w")
    from secprivnode.rpc.codec import proposal_from_hex

    tx_id = to_hex(proposal_from_hex(wanted["proposal"], max_bytes=1 << 20).tx_id)
    async with server.http.ws_connect(ws_url(server)) as ws:
        sub = (await rpc(ws, "subscribe", {"kinds": ["tx", "contract"], "tx_id": tx_id}))["result"]
        await server.post({"jsonrpc": "2.0", "method": "tx_submit", "params": put_params(ident, "other"), "id": 1})
        await server.post({"jsonrpc": "2.0", "method": "tx_submit", "params": wanted, "id": 2})
        got = [(await ws.receive_json(timeout=5))["params"] for _ in range(2)]
        assert {g["subscription"] for g in got} == {sub}
        assert sorted(g["result"]["kind"] for g in got) == ["contract", "tx"]
        assert all(g["result"]["data"]["tx_id"] == tx_id for g in got)
        contract = next(g["result"]["data"] for g in got if g["result"]["kind"] == "contract")
        assert contract["name"] == "put" and contract["payload"] == "0x" + b"w".hex()


async def test_subscribe_errors(server: Any) -> None:
    async with server.http.ws_connect(ws_url(server)) as ws:
        r = await rpc(ws, "subscribe", {"kinds": ["block"], "channel": "nowhere"})
        assert r["error"]["code"] == -32002
        r = await rpc(ws, "subscribe", {"kinds": ["blocks"]})
        assert r["error"]["code"] == -32602 and "'kinds'" in r["error"]["message"]
        for i in range(3):
            assert "result" in await rpc(ws, "subscribe", {"kinds": ["block"]}, id_=i)
        r = await rpc(ws, "subscribe", {"kinds": ["block"]}, id_=9)
        assert r["error"]["code"] == -32006 and "3 subscriptions" in r["error"]["message"]


async def test_a_burst_larger_than_the_send_queue_reaches_a_prompt_reader(server: Any, fake: Any) -> None:
    # One block's transactions arrive as one burst of events; a client that keeps reading must
    # get all of them even when the burst is larger than the per-connection send queue.
    state = server.app[STATE_KEY]
    burst = state.limits.ws_send_queue_max * 3
    async with server.http.ws_connect(ws_url(server)) as ws:
        assert "result" in await rpc(ws, "subscribe", {"kinds": ["tx"]})
        for i in range(burst):
            fake.publish(Event("tx", "city", {"n": i}))
        got = [(await ws.receive_json(timeout=10))["params"]["result"]["data"]["n"] for _ in range(burst)]
    assert got == list(range(burst))
    assert state.slow_disconnects == 0


async def test_slow_subscriber_is_disconnected_and_server_keeps_serving(server: Any, fake: Any) -> None:
    state = server.app[STATE_KEY]
    blob = bytes(128 * 1024)
    async with aiohttp.ClientSession(read_bufsize=1024) as slow:
        ws = await slow.ws_connect(ws_url(server), max_msg_size=0)
        assert "result" in await rpc(ws, "subscribe", {"kinds": ["block"]})
        # Publish large events and never read them: kernel buffers fill, then the node's bounded queue.
        for i in range(2000):
            if state.slow_disconnects:
                break
            fake.publish(Event("block", "city", {"number": i, "blob": blob}))
            await asyncio.sleep(0.001)
        assert state.slow_disconnects == 1
        assert server.metrics.registry.get_sample_value("secprivnode_ws_slow_consumer_disconnects_total") == 1.0
        received = 0
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            received += 1
        assert ws.close_code == WS_CLOSE_SLOW_CONSUMER
        assert received < i  # events were dropped with the connection, not buffered without bound
        await ws.close()
    await wait_until(lambda: not fake.subscribers and not state.sessions)
    status, body = await server.post({"jsonrpc": "2.0", "method": "chain_height", "id": 1})
    assert (status, body["result"]) == (200, 1)


async def test_failing_event_stream_ends_with_an_error_notification(server: Any, fake: Any) -> None:
    from secprivnode.api import NotFoundError

    def broken(channel: Any, kinds: Any, tx_id: Any = None) -> Any:
        async def gen() -> Any:
            yield Event("block", "city", {"number": 1})
            raise NotFoundError("the ledger was pruned")

        return gen()

    fake.subscribe = broken
    async with server.http.ws_connect(ws_url(server)) as ws:
        sub = (await rpc(ws, "subscribe", {"kinds": ["block"]}))["result"]
        first = await ws.receive_json(timeout=5)
        assert first["params"] == {
            "subscription": sub,
            "result": {"kind": "block", "channel": "city", "data": {"number": 1}},
        }
        last = await ws.receive_json(timeout=5)
        assert last["params"] == {"subscription": sub, "error": {"code": -32001, "message": "the ledger was pruned"}}
        assert (await rpc(ws, "unsubscribe", [sub], id_=2))["result"] is False  # it already ended


async def test_oversize_ws_message_closes_that_socket_only(server: Any) -> None:
    limits = server.app[STATE_KEY].limits
    async with server.http.ws_connect(ws_url(server)) as ws:
        await ws.send_str(" " * (limits.max_ws_message_bytes + 1))
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    async with server.http.ws_connect(ws_url(server)) as ws:
        assert (await rpc(ws, "chain_height"))["result"] == 1


async def test_shutdown_closes_subscribers(fake: Any) -> None:
    from secprivnode.rpc.server import create_rpc_app, run_rpc_server

    runner, port = await run_rpc_server(create_rpc_app(fake), "127.0.0.1", 0)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
        assert "result" in await rpc(ws, "subscribe", {"kinds": ["block"]})
        await asyncio.wait_for(runner.cleanup(), 10)
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert not fake.subscribers


async def test_subscribe_response_precedes_its_events_in_a_batch(server: Any, ident: ClientIdentity) -> None:
    async with server.http.ws_connect(ws_url(server)) as ws:
        await ws.send_json(
            [
                {"jsonrpc": "2.0", "method": "subscribe", "params": {"kinds": ["block"]}, "id": 1},
                {"jsonrpc": "2.0", "method": "tx_submit", "params": put_params(ident, "z"), "id": 2},
            ]
        )
        first = await ws.receive_json(timeout=5)
        assert isinstance(first, list) and sorted(r["id"] for r in first) == [1, 2]
        sub = next(r["result"] for r in first if r["id"] == 1)
        event = await ws.receive_json(timeout=5)
        assert event["params"]["subscription"] == sub and event["params"]["result"]["data"]["number"] == 1


async def test_subscription_gauge_returns_to_zero(server: Any) -> None:
    gauge = "secprivnode_ws_subscriptions"
    async with server.http.ws_connect(ws_url(server)) as ws:
        subs = [(await rpc(ws, "subscribe", {"kinds": ["block"]}, id_=i))["result"] for i in range(3)]
        assert server.metrics.registry.get_sample_value(gauge) == 3.0
        assert (await rpc(ws, "unsubscribe", [subs[0]], id_=9))["result"] is True
        await wait_until(lambda: server.metrics.registry.get_sample_value(gauge) == 2.0)
    await wait_until(lambda: server.metrics.registry.get_sample_value(gauge) == 0.0)
    await wait_until(lambda: server.metrics.registry.get_sample_value("secprivnode_ws_connections") == 0.0)
