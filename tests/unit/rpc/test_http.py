"""The HTTP transport: status codes, body limits, admission control and the OpenRPC document."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from secprivnode.api import ERROR_CODES
from secprivnode.rpc.methods import METHODS
from secprivnode.rpc.server import STATE_KEY, RpcLimits

DOCS = Path(__file__).resolve().parents[3] / "docs" / "rpc.md"


async def test_single_and_batch(server: Any) -> None:
    status, body = await server.post({"jsonrpc": "2.0", "method": "chain_height", "id": 1})
    assert (status, body) == (200, {"jsonrpc": "2.0", "result": 1, "id": 1})
    status, body = await server.post([{"jsonrpc": "2.0", "method": "chain_height", "id": i} for i in range(3)])
    assert status == 200 and [b["id"] for b in body] == [0, 1, 2]


async def test_parse_error_over_http(server: Any) -> None:
    status, body = await server.post(data=b"{not json")
    assert status == 200 and body["error"]["code"] == -32700 and body["id"] is None


async def test_notifications_only_no_body(server: Any) -> None:
    async with server.http.post(server.url, json=[{"jsonrpc": "2.0", "method": "chain_height"}]) as resp:
        assert resp.status == 204
        assert await resp.read() == b""


@pytest.fixture
def limits() -> RpcLimits:
    return RpcLimits(max_body_bytes=64 * 1024, max_concurrent_requests=2)


async def test_oversize_body_refused_and_server_keeps_serving(server: Any) -> None:
    big = json.dumps({"jsonrpc": "2.0", "method": "chain_height", "params": ["x" * 70_000], "id": 1}).encode()
    status, body = await server.post(data=big)
    assert status == 413
    assert body["error"]["code"] == -32600 and "exceeds" in body["error"]["message"]
    assert server.app[STATE_KEY].rejected_too_large == 1

    async def chunks() -> Any:  # no Content-Length: aiohttp's own client_max_size must catch it
        for _ in range(3):
            yield b" " * 30_000

    async with server.http.post(server.url, data=chunks()) as resp:
        assert resp.status == 413
    assert server.app[STATE_KEY].rejected_too_large == 2
    status, body = await server.post({"jsonrpc": "2.0", "method": "chain_height", "id": 2})
    assert (status, body["result"]) == (200, 1)
    metrics = server.metrics.registry.get_sample_value("secprivnode_rpc_rejected_total", {"reason": "too_large"})
    assert metrics == 2.0


async def test_overloaded_when_too_many_in_flight(server: Any, fake: Any, ident_params: Any) -> None:
    fake.hold_submit = asyncio.Event()
    calls = [
        asyncio.create_task(server.post({"jsonrpc": "2.0", "method": "tx_submit", "params": p, "id": i}))
        for i, p in enumerate(ident_params[:2])
    ]
    state = server.app[STATE_KEY]
    for _ in range(200):
        if state.in_flight == 2:
            break
        await asyncio.sleep(0.01)
    assert state.in_flight == 2
    status, body = await server.post({"jsonrpc": "2.0", "method": "chain_height", "id": 9})
    assert status == 503 and body["error"]["code"] == -32006
    fake.hold_submit.set()
    results = await asyncio.gather(*calls)
    assert all(s == 200 and "result" in b for s, b in results)
    status, _ = await server.post({"jsonrpc": "2.0", "method": "chain_height", "id": 10})
    assert status == 200


@pytest.fixture
def ident_params(tmp_path: Path, fakemod: Any) -> list[dict[str, Any]]:
    from secprivnode.client import ClientIdentity, build_proposal
    from secprivnode.rpc.codec import proposal_to_hex, to_hex

    ident = ClientIdentity.load(*fakemod.make_identity(tmp_path, "council", "client", "bob"))
    out = []
    for i in range(3):
        p, sig = build_proposal(ident, "city", "kv", "put", [f"k{i}", b"v"])
        out.append({"proposal": proposal_to_hex(p), "signature": to_hex(sig)})
    return out


async def test_rpc_discover_lists_every_method_with_params(server: Any) -> None:
    _, body = await server.post({"jsonrpc": "2.0", "method": "rpc.discover", "id": 1})
    doc = body["result"]
    assert doc["openrpc"].startswith("1.")
    assert doc["info"]["title"] and doc["info"]["version"]
    names = [m["name"] for m in doc["methods"]]
    assert names == list(METHODS)
    for m in doc["methods"]:
        spec = METHODS[m["name"]]
        assert [(p["name"], p["required"]) for p in m["params"]] == [(p.name, p.required) for p in spec.params]
        assert all(isinstance(p["schema"], dict) and p["schema"] for p in m["params"])
        assert m["result"]["schema"]
        for ref in m.get("errors", []):
            assert ref["$ref"].split("/")[-1] in doc["components"]["errors"]
    errors = doc["components"]["errors"]
    for code, name in ERROR_CODES.items():
        assert errors[name]["code"] == code
    assert {e["code"] for e in errors.values()} >= {-32700, -32600, -32601, -32602, -32603}
    identity = {m["name"]: m["x-identity"] for m in doc["methods"]}
    assert {n for n, i in identity.items() if i == "signed-read"} == {"state_get", "state_getRange", "state_getHistory"}
    assert {n for n, i in identity.items() if i == "signed-proposal"} == {"tx_submit", "tx_submitAndWait", "tx_query"}
    assert identity["config_update"] == "admin-signatures"
    assert all(identity[n] == "none" for n in ("chain_getBlockByNumber", "chain_getTxProof", "chain_height"))
    assert all(m["description"] for m in doc["methods"])
    block = next(m for m in doc["methods"] if m["name"] == "chain_getBlockByNumber")
    assert block["params"][0] == {"name": "number", "required": True, "schema": block["params"][0]["schema"]} | {
        "description": "Block number."
    }


def test_docs_cover_every_method_and_error_code() -> None:
    text = DOCS.read_text()
    for name in METHODS:
        assert f"`{name}`" in text, name
    for code, name in ERROR_CODES.items():
        assert str(code) in text and name in text
    for name, method in METHODS.items():  # the identity column says what each method needs
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        label = {"none": "open", "signed-read": "signed read", "signed-proposal": "proposal"}
        assert row.rstrip(" |").endswith(label.get(method.identity, "admins")), row


async def test_websocket_connection_limit(fake: Any) -> None:
    import aiohttp

    from secprivnode.rpc.server import create_rpc_app, run_rpc_server

    runner, port = await run_rpc_server(create_rpc_app(fake, limits=RpcLimits(max_ws_connections=1)), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}/ws"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await http.ws_connect(f"ws://127.0.0.1:{port}/ws")
            assert exc.value.status == 503
    finally:
        await runner.cleanup()
