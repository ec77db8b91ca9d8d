"""JSON-RPC 2.0 rules, case by case, against the dispatcher over decoded JSON (no sockets)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from secprivnode.api import ERROR_CODES
from secprivnode.client import ClientIdentity, build_proposal
from secprivnode.rpc.codec import proposal_to_hex, to_hex
from secprivnode.rpc.dispatch import dispatch, handle_text
from secprivnode.rpc.methods import METHODS, CallContext
from secprivnode.signed_read import auth_to_json, sign_read

MAX_BATCH = 10


@pytest.fixture
def ctx(fake: Any) -> CallContext:
    return CallContext(fake, None, METHODS)


async def call(ctx: CallContext, msg: Any) -> Any:
    return await dispatch(msg, ctx, max_batch_len=MAX_BATCH)


def req(method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
    r: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        r["params"] = params
    return r


@pytest.fixture
def ident(tmp_path: Path, fakemod: Any) -> ClientIdentity:
    return ClientIdentity.load(*fakemod.make_identity(tmp_path, "council", "client", "alice"))


def signed(ident: ClientIdentity, fn: str, *args: Any, channel: str = "city") -> dict[str, Any]:
    p, sig = build_proposal(ident, channel, "kv", fn, args)
    return {"proposal": proposal_to_hex(p), "signature": to_hex(sig)}


def read(ident: ClientIdentity, method: str, *params: Any, channel: str = "city") -> list[Any]:
    """Positional params of a signed state read (``channel`` and ``auth`` appended)."""
    auth = auth_to_json(sign_read(ident.cert_der, ident.sign, channel, method, params))
    return [*params, channel, auth]


# ---- parse errors and invalid requests -----------------------------------------------------------


async def test_parse_error_has_null_id(ctx: CallContext) -> None:
    bodies = (b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]', b"\xff\xfe", b"", b"NaN", b"[" * 100_000)
    for body in bodies:
        r = await handle_text(body, ctx, max_batch_len=MAX_BATCH)
        assert r == {"jsonrpc": "2.0", "error": {"code": -32700, "message": r["error"]["message"]}, "id": None}
        assert r["error"]["message"].startswith("Parse error")


@pytest.mark.parametrize(
    ("msg", "echo"),
    [
        ({"method": "chain_height", "id": 1}, 1),  # missing jsonrpc
        ({"jsonrpc": "1.0", "method": "chain_height", "id": "a"}, "a"),  # wrong version
        ({"jsonrpc": 2.0, "method": "chain_height", "id": 2}, 2),  # version as a number
        ({"jsonrpc": "2.0", "method": 1, "params": "bar", "id": 3}, 3),  # method not a string
        ({"jsonrpc": "2.0", "id": 4}, 4),  # no method
        ({"jsonrpc": "2.0", "method": "chain_height", "params": "x", "id": 5}, 5),  # params a string
        ({"jsonrpc": "2.0", "method": "chain_height", "params": 7, "id": None}, None),  # params a number
        ({"jsonrpc": "2.0", "method": "chain_height", "id": {"a": 1}}, None),  # id an object: not echoed
        ({"jsonrpc": "2.0", "method": "chain_height", "id": [1]}, None),  # id an array
        ({"jsonrpc": "2.0", "method": "chain_height", "id": True}, None),  # id a boolean
        (1, None),  # not an object
        ("foo", None),
    ],
)
async def test_invalid_request_variants(ctx: CallContext, msg: Any, echo: Any) -> None:
    r = await call(ctx, msg)
    assert r["error"]["code"] == -32600
    assert r["id"] == echo
    assert "result" not in r


async def test_invalid_request_without_id_is_still_answered(ctx: CallContext) -> None:
    r = await call(ctx, {"jsonrpc": "1.0", "method": "chain_height"})
    assert r["error"]["code"] == -32600 and r["id"] is None


async def test_empty_batch_is_one_error_object(ctx: CallContext) -> None:
    r = await call(ctx, [])
    assert isinstance(r, dict)
    assert r["error"]["code"] == -32600 and r["id"] is None


async def test_batch_of_invalid_elements_gets_one_error_each(ctx: CallContext) -> None:
    r = await call(ctx, [1, 2, 3])
    assert isinstance(r, list) and len(r) == 3
    assert all(x == {"jsonrpc": "2.0", "error": x["error"], "id": None} and x["error"]["code"] == -32600 for x in r)


async def test_mixed_batch(ctx: CallContext) -> None:
    batch = [
        req("chain_height", id_="1"),
        {"jsonrpc": "2.0", "method": "chain_height", "params": []},  # notification
        req("chain_height", {"foo": 1}, id_=2),
        {"foo": "boo"},
        req("foo.get", {"name": "myself"}, id_="5"),
        req("node_peers", id_=9),
    ]
    r = await call(ctx, batch)
    assert [x["id"] for x in r] == ["1", 2, None, "5", 9]
    assert r[0]["result"] == 1
    assert r[1]["error"]["code"] == -32602
    assert r[2]["error"]["code"] == -32600
    assert r[3]["error"]["code"] == -32601
    assert r[4]["result"][0]["name"] == "n2"


async def test_notifications_only_gets_nothing(ctx: CallContext, fake: Any) -> None:
    r = await call(
        ctx,
        [{"jsonrpc": "2.0", "method": "chain_height"}, {"jsonrpc": "2.0", "method": "no_such", "params": [1]}],
    )
    assert r is None
    assert await call(ctx, {"jsonrpc": "2.0", "method": "chain_getBlockByNumber", "params": [99]}) is None


async def test_notification_runs(ctx: CallContext, fake: Any, ident: ClientIdentity) -> None:
    assert await call(ctx, {"jsonrpc": "2.0", "method": "tx_submit", "params": signed(ident, "put", "k", b"v")}) is None
    assert fake.state[("city", "kv", "k")][0] == b"v"


async def test_batch_too_long(ctx: CallContext) -> None:
    r = await call(ctx, [req("chain_height", id_=i) for i in range(MAX_BATCH + 1)])
    assert isinstance(r, dict) and r["error"]["code"] == -32600 and "limit" in r["error"]["message"]
    ok = await call(ctx, [req("chain_height", id_=i) for i in range(MAX_BATCH)])
    assert [x["id"] for x in ok] == list(range(MAX_BATCH))


@pytest.mark.parametrize("id_", ["abc", 7, -3, 1.5, None, 2**70])
async def test_id_echoed_exactly(ctx: CallContext, id_: Any) -> None:
    r = await call(ctx, req("chain_height", id_=id_))
    assert r["id"] == id_ and type(r["id"]) is type(id_)
    assert r == {"jsonrpc": "2.0", "result": 1, "id": id_}


# ---- methods and params --------------------------------------------------------------------------


async def test_method_not_found(ctx: CallContext) -> None:
    r = await call(ctx, req("chain_nope"))
    assert r["error"] == {"code": -32601, "message": "Method not found", "data": {"method": "chain_nope"}}


async def test_websocket_only_methods_not_found_over_http(ctx: CallContext) -> None:
    r = await call(ctx, req("subscribe", {"kinds": ["block"]}))
    assert r["error"]["code"] == -32601 and "WebSocket" in r["error"]["message"]


async def test_params_by_name_and_position(ctx: CallContext) -> None:
    by_name = await call(ctx, req("chain_getBlockByNumber", {"number": 0, "channel": "lab"}))
    by_pos = await call(ctx, req("chain_getBlockByNumber", [0, "lab"]))
    assert by_name["result"] == by_pos["result"]
    assert by_name["result"]["channel"] == "lab" and by_name["result"]["number"] == 0
    default = await call(ctx, req("chain_getBlockByNumber", [0]))
    assert default["result"]["channel"] == "city"


@pytest.mark.parametrize(
    ("method", "params", "param"),
    [
        ("chain_getBlockByNumber", {}, "number"),  # missing
        ("chain_getBlockByNumber", [], "number"),
        ("chain_getBlockByNumber", {"number": 0, "extra": 1}, "extra"),  # extra by name
        ("chain_getBlockByNumber", [0, "city", "x"], ""),  # too many by position
        ("chain_getBlockByNumber", {"number": "0"}, "number"),  # wrong type
        ("chain_getBlockByNumber", {"number": True}, "number"),  # bool is not an integer
        ("chain_getBlockByNumber", {"number": -1}, "number"),
        ("chain_getBlockByNumber", [1.5], "number"),
        ("chain_getBlockByHash", {"hash": "0x12"}, "hash"),  # wrong length
        ("chain_getBlockByHash", {"hash": "0X" + "00" * 32}, "hash"),  # bad prefix
        ("chain_getBlockByHash", {"hash": "0x" + "AB" * 32}, "hash"),  # uppercase
        ("chain_getBlockByHash", {"hash": "0x" + "0" * 63}, "hash"),  # odd length
        ("chain_getBlockByHash", {"hash": "0x" + "zz" * 32}, "hash"),
        ("state_get", {"contract": "kv"}, "key"),
        ("state_getRange", {"contract": "kv", "start": "a", "end": "b", "limit": 0}, "limit"),
        ("state_getRange", {"contract": "kv", "start": "a", "end": "b", "limit": 10**6}, "limit"),
        ("chain_height", {"channel": 5}, "channel"),
        ("tx_submit", {"proposal": "0x00", "signature": "0x"}, "proposal"),
        ("tx_submit", {"proposal": "nothex", "signature": "0x"}, "proposal"),
        ("config_update", {"config": "0xc0", "signatures": []}, "config"),
    ],
)
async def test_invalid_params_name_the_parameter(ctx: CallContext, method: str, params: Any, param: str) -> None:
    r = await call(ctx, req(method, params))
    assert r["error"]["code"] == -32602, r
    assert r["error"]["message"].startswith("Invalid params")
    if param:
        assert repr(param) in r["error"]["message"]
        assert r["error"]["data"] == {"param": param}


async def test_malformed_signature_hex_is_invalid_params(ctx: CallContext, ident: ClientIdentity) -> None:
    params = signed(ident, "put", "k", b"v")
    params["signature"] = params["signature"].upper().replace("0X", "0x")
    r = await call(ctx, req("tx_submit", params))
    assert r["error"]["code"] == -32602 and "'signature'" in r["error"]["message"]


# ---- application and internal errors -------------------------------------------------------------


async def test_application_errors_keep_code_message_data(ctx: CallContext, ident: ClientIdentity) -> None:
    r = await call(ctx, req("chain_height", {"channel": "nowhere"}))
    assert r["error"] == {"code": -32002, "message": "unknown channel 'nowhere'", "data": {"channel": "nowhere"}}
    assert ERROR_CODES[r["error"]["code"]] == "UnknownChannel"
    r = await call(ctx, req("chain_getBlockByNumber", [42]))
    assert r["error"]["code"] == -32001 and "data" not in r["error"]
    r = await call(ctx, req("tx_submitAndWait", signed(ident, "fail")))
    assert r["error"] == {"code": -32004, "message": "contract returned status 500: refused", "data": {"status": 500}}
    bad = signed(ident, "put", "k", b"v")
    bad["signature"] = signed(ident, "put", "k", b"w")["signature"]
    r = await call(ctx, req("tx_submit", bad))
    assert r["error"]["code"] == -32003 and r["error"]["message"] == "bad creator signature"


async def test_error_data_bytes_become_hex(ctx: CallContext) -> None:
    tx_id = "0x" + "ab" * 32
    r = await call(ctx, req("chain_getTransaction", {"tx_id": tx_id}))
    assert r["error"]["data"] == {"tx_id": tx_id}


async def test_internal_error_does_not_leak(ctx: CallContext, fake: Any, caplog: pytest.LogCaptureFixture) -> None:
    fake.explode = True
    with caplog.at_level(logging.ERROR, logger="secprivnode.rpc.dispatch"):
        r = await call(ctx, req("node_peers", id_="x"))
    assert r == {"jsonrpc": "2.0", "error": {"code": -32603, "message": "Internal error"}, "id": "x"}
    assert "secret" not in json.dumps(r) and "Traceback" not in json.dumps(r)
    assert any("node_peers" in rec.getMessage() and rec.exc_info for rec in caplog.records)


async def test_channel_must_match_proposal(ctx: CallContext, ident: ClientIdentity) -> None:
    params = {**signed(ident, "put", "k", b"v"), "channel": "lab"}
    r = await call(ctx, req("tx_submit", params))
    assert r["error"]["code"] == -32602 and "'channel'" in r["error"]["message"]


async def test_results_are_hex_and_names(ctx: CallContext, ident: ClientIdentity, fake: Any) -> None:
    params = {**signed(ident, "put", "k", b"\x00\xff"), "transient": {"secret": "0x0102"}}
    r = await call(ctx, req("tx_submitAndWait", params))
    res = r["result"]
    assert res["code"] == "VALID" and res["block_number"] == 1
    assert res["response"]["status"] == 200
    assert fake.last_transient == {"secret": b"\x01\x02"}
    tx = (await call(ctx, req("chain_getTransaction", [res["tx_id"]])))["result"]
    assert tx["args"] == ["k", "0x00ff"] and tx["code"] == "VALID" and tx["creator_name"] == "alice"
    assert tx["rwset"]["writes"] == [{"key": "k", "value": "0x00ff"}]
    block = (await call(ctx, req("chain_getBlockByNumber", [1])))["result"]
    assert block["tx_ids"] == [res["tx_id"]] and block["validation_codes"] == ["VALID"]
    by_hash = (await call(ctx, req("chain_getBlockByHash", [block["hash"]])))["result"]
    assert by_hash == block
    state = (await call(ctx, req("state_get", read(ident, "state_get", "kv", "k"))))["result"]
    assert state == {"value": "0x00ff", "version": [1, 0]}
    assert (await call(ctx, req("state_get", read(ident, "state_get", "kv", "absent"))))["result"] is None
    raft = (await call(ctx, req("raft_status")))["result"]
    assert raft["leader"] == "n1" and raft["term"] == 3 and raft["voters"] == ["n1", "n2", "n3"]
    status = (await call(ctx, req("node_status")))["result"]
    assert status["default_channel"] == "city" and status["cert"] == "0x0102"


async def test_storage_shaped_results_are_normalised(ctx: CallContext, fake: Any, ident: ClientIdentity) -> None:
    from secprivnode.client import verify_inclusion
    from storage.blockstore import TxProof

    submitted = (await call(ctx, req("tx_submitAndWait", signed(ident, "put", "a", b"\x01"))))["result"]
    await call(ctx, req("tx_submitAndWait", signed(ident, "put", "b", b"\x02")))
    as_dict = (await call(ctx, req("chain_getTxProof", [submitted["tx_id"]])))["result"]

    async def storage_proof(channel: Any, tx_id: bytes) -> TxProof:
        d = await type(fake).get_tx_proof(fake, channel, tx_id)
        return TxProof(d["header"], d["tx_hash"], d["index"], d["size"], d["path"])

    async def storage_get(channel: Any, contract: str, key: str) -> Any:
        return (b"\x01", (1, 0))

    async def storage_range(channel: Any, contract: str, start: str, end: str, limit: int) -> Any:
        return [("a", b"\x01", (1, 0)), ("b", b"\x02", (2, 0))]

    fake.get_tx_proof, fake.state_get, fake.state_get_range = storage_proof, storage_get, storage_range
    from_storage = (await call(ctx, req("chain_getTxProof", [submitted["tx_id"]])))["result"]
    assert from_storage == as_dict and verify_inclusion(from_storage)
    got = (await call(ctx, req("state_get", read(ident, "state_get", "kv", "a"))))["result"]
    assert got == {"value": "0x01", "version": [1, 0]}
    rows = (await call(ctx, req("state_getRange", read(ident, "state_getRange", "kv", "", "", 1))))["result"]
    assert rows == [{"key": "a", "value": "0x01", "version": [1, 0]}]


# ---- signed state reads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("state_get", {"contract": "kv", "key": "k"}),
        ("state_getRange", {"contract": "kv", "start": "a", "end": "b"}),
        ("state_getHistory", {"contract": "kv", "key": "k"}),
    ],
)
async def test_state_reads_without_auth_are_unauthenticated(ctx: CallContext, method: str, params: Any) -> None:
    r = await call(ctx, req(method, params))
    assert r["error"]["code"] == -32010 and r["error"]["data"] == {"reason": "missing"}
    assert "signed read" in r["error"]["message"]


async def test_signed_read_covers_exactly_the_read_performed(
    ctx: CallContext, ident: ClientIdentity, fake: Any
) -> None:
    await call(ctx, req("tx_submitAndWait", signed(ident, "put", "k", b"\x01")))
    # Signed for key "k", sent for key "other": the node rebuilds the request from what it runs.
    params = read(ident, "state_get", "kv", "k")
    params[1] = "other"
    r = await call(ctx, req("state_get", params))
    assert r["error"]["code"] == -32010 and r["error"]["data"]["reason"] == "bad_signature"
    # The default limit is part of what is signed: a read signed with limit 100 may omit it.
    auth = auth_to_json(sign_read(ident.cert_der, ident.sign, "city", "state_getHistory", ("kv", "k", 100)))
    r = await call(ctx, req("state_getHistory", {"contract": "kv", "key": "k", "auth": auth}))
    assert len(r["result"]) == 1
    assert [x.request.method for x in fake.authorized_reads] == ["state_getHistory"]


async def test_signed_read_for_another_channel_is_refused(ctx: CallContext, ident: ClientIdentity) -> None:
    params = read(ident, "state_get", "kv", "k", channel="lab")
    params[2] = "city"
    r = await call(ctx, req("state_get", params))
    assert r["error"]["code"] == -32010 and r["error"]["data"]["reason"] == "wrong_channel"
    # Omitting channel means the default channel, which the signature must name.
    params[2] = None
    r = await call(ctx, req("state_get", params))
    assert r["error"]["data"]["reason"] == "wrong_channel"


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ({"channel": "city"}, "exactly"),
        ({"channel": "city", "creator": "0x00", "nonce": "0x00", "timestamp_ms": 1, "signature": "0x"}, "nonce"),
        (
            {"channel": "city", "creator": "00", "nonce": "0x" + "00" * 24, "timestamp_ms": 1, "signature": "0x"},
            "creator",
        ),
        (
            {"channel": "city", "creator": "0x", "nonce": "0x" + "00" * 24, "timestamp_ms": -1, "signature": "0x"},
            "timestamp",
        ),
        ("0x00", "exactly"),
    ],
)
async def test_malformed_auth_is_invalid_params(ctx: CallContext, auth: Any, field: str) -> None:
    r = await call(ctx, req("state_get", {"contract": "kv", "key": "k", "auth": auth}))
    assert r["error"]["code"] == -32602 and r["error"]["data"] == {"param": "auth"}
    assert field in r["error"]["message"]
