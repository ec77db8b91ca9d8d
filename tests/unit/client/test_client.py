"""The client SDK end to end against the in-memory node behind a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from crypto.signing import verify
from secprivnode import client as sdk
from secprivnode.api import ERROR_CODES, ServiceError
from secprivnode.client import AsyncClient, Client, ClientIdentity, build_proposal, check_args, verify_inclusion
from secprivnode.rpc.codec import from_hex, proposal_from_hex, proposal_to_hex, to_hex
from storage.model import BatchConfig, ChannelConfig, OrgConfig


@pytest.fixture
def ident(tmp_path: Path, fakemod: Any) -> ClientIdentity:
    return ClientIdentity.load(*fakemod.make_identity(tmp_path, "council", "client", "dana"))


def test_identity_load_and_mismatch(tmp_path: Path, fakemod: Any, ident: ClientIdentity) -> None:
    assert (ident.org, ident.name, ident.role) == ("council", "dana", "client")
    cert, _ = fakemod.make_identity(tmp_path / "a", "council", "client", "erin")
    _, other_key = fakemod.make_identity(tmp_path / "b", "council", "client", "fred")
    with pytest.raises(ValueError, match="does not match"):
        ClientIdentity.load(cert, other_key)


def test_proposal_signing_and_canonical_hex(ident: ClientIdentity) -> None:
    p, sig = build_proposal(ident, "city", "kv", "put", ["k", b"\x00", 7, True, None, [1, {"a": b""}]])
    assert len(p.header.nonce) == 24 and p.header.creator == ident.cert_der
    assert verify(ident.key.public, sig, p.hash())
    again = proposal_from_hex(proposal_to_hex(p), max_bytes=1 << 20)
    assert again.hash() == p.hash() and again.tx_id == p.tx_id  # arrays decode as tuples; same bytes
    p2, _ = build_proposal(ident, "city", "kv", "put", ["k", b"\x00", 7, True, None, [1, {"a": b""}]])
    assert p2.tx_id != p.tx_id  # fresh nonce each time


@pytest.mark.parametrize(
    ("args", "where"),
    [([1.5], "argument 0"), (["a", [1, 2.0]], r"argument 1\[1\]"), ([{"x": {"y": 0.1}}], "argument 0")],
)
def test_floats_refused_clearly(args: list[Any], where: str) -> None:
    with pytest.raises(sdk.ArgumentError, match=rf"{where}.*floats are not allowed"):
        check_args(args)


def test_other_unencodable_args_refused() -> None:
    with pytest.raises(sdk.ArgumentError, match="unsupported type"):
        check_args([object()])
    with pytest.raises(sdk.ArgumentError, match="map keys"):
        check_args([{1: "x"}])
    with pytest.raises(sdk.ArgumentError, match="range"):
        check_args([2**64])


def test_error_classes_mirror_service_codes() -> None:
    classes = {code: type(sdk.rpc_error(code, "m")) for code in ERROR_CODES}
    assert all(c is not sdk.RpcError and issubclass(c, sdk.RpcError) for c in classes.values())
    assert len(set(classes.values())) == len(ERROR_CODES)
    for cls in ServiceError.__subclasses__():
        assert classes[cls.code].code == cls.code
    assert type(sdk.rpc_error(-32602, "m")) is sdk.InvalidParams
    assert type(sdk.rpc_error(-31999, "m")) is sdk.RpcError


async def test_async_client_end_to_end(server: Any, fake: Any, ident: ClientIdentity) -> None:
    async with AsyncClient(server.url, ident) as c:
        assert await c.height() == 1
        r = await c.invoke("kv", "put", "door-7", b"\x01\x02", transient={"pin": b"1234"})
        assert r.valid and r.code == "VALID" and r.block_number == 1 and r.response["status"] == 200
        assert fake.verified_signatures == 1  # the node checked the creator signature
        assert fake.last_transient == {"pin": b"1234"}
        assert c.channel == "city"  # learned from node_status
        assert await c.height() == 2
        assert await c.state_get("kv", "door-7") == {"value": b"\x01\x02", "version": [1, 0]}
        assert await c.state_get("kv", "nothing") is None
        q = await c.query("kv", "get", "door-7")
        assert q["payload"] == b"\x01\x02" and q["status"] == 200
        tx = await c.get_tx(r.tx_id)
        assert tx["function"] == "put" and tx["args"] == ["door-7", "0x0102"] and tx["creator_name"] == "dana"
        block = await c.get_block(1)
        assert block["tx_ids"] == [to_hex(r.tx_id)] and block["validation_codes"] == ["VALID"]
        assert await c.get_block_by_hash(from_hex(block["hash"], "hash")) == block
        assert (await c.tx_status(r.tx_id))["code"] == "VALID"
        assert (await c.raft_status())["leader"] == "n1"

        nowait = await c.invoke("kv", "put", "door-8", b"", wait=False)
        assert nowait.block_number is None and (await c.tx_status(nowait.tx_id))["block_number"] == 2

        proof = await c.get_tx_proof(r.tx_id)
        assert c.verify_inclusion(proof)
        assert verify_inclusion(proof, from_hex(block["hash"], "hash"))


async def test_inclusion_proofs_detect_tampering(server: Any, ident: ClientIdentity) -> None:
    async with AsyncClient(server.url, ident) as c:
        ids = [(await c.invoke("kv", "put", f"k{i}", b"v", wait=False)).tx_id for i in range(3)]
        proof = await c.get_tx_proof(ids[1])
        assert verify_inclusion(proof)
        # one tx per block in the fake: a path of length 0; tampering with leaf, index or header fails
        assert not verify_inclusion({**proof, "tx_hash": to_hex(b"\x00" * 32)})
        assert not verify_inclusion({**proof, "index": 1})
        assert not verify_inclusion({**proof, "header": {**proof["header"], "timestamp_ms": 1}})
        assert not verify_inclusion({**proof, "path": ["0x" + "11" * 32]})
        assert not verify_inclusion(proof, b"\x00" * 32)
        assert not verify_inclusion({**proof, "header": "garbage"})
        assert not verify_inclusion({})


async def test_inclusion_proof_in_a_multi_tx_block(ident: ClientIdentity) -> None:
    from crypto.merkle import merkle_proof, merkle_root
    from secprivnode.rpc.codec import header_to_json
    from storage.model import BlockHeader

    leaves = [bytes([i]) * 32 for i in range(7)]
    header = BlockHeader(1, "city", 3, b"\x00" * 32, merkle_root(leaves), 5, 1, 4)
    for i in range(7):
        proof = {
            "block_hash": to_hex(header.hash()),
            "header": header_to_json(header),
            "tx_hash": to_hex(leaves[i]),
            "index": i,
            "size": 7,
            "path": [to_hex(p) for p in merkle_proof(leaves, i)],
        }
        assert verify_inclusion(proof)
        assert not verify_inclusion({**proof, "index": (i + 1) % 7})
        # the path's shape depends on the size only along the right edge of the tree
        assert verify_inclusion({**proof, "size": 8}) == (i < 6)


async def test_typed_errors(server: Any, fake: Any, ident: ClientIdentity) -> None:
    async with AsyncClient(server.url, ident) as c:
        with pytest.raises(sdk.ContractFailed) as exc:
            await c.invoke("kv", "fail")
        assert exc.value.code == -32004 and exc.value.data == {"status": 500}
        with pytest.raises(sdk.RpcTimeout):
            await c.invoke("kv", "slow", timeout_s=0.5)
        with pytest.raises(sdk.NotFound):
            await c.get_block(99)
        with pytest.raises(sdk.MethodNotFound):
            await c.call("no_such_method")
        with pytest.raises(sdk.InvalidParams):
            await c.call("chain_getBlockByNumber", {"number": "one"})
        with pytest.raises(sdk.ArgumentError):
            await c.invoke("kv", "put", "k", 1.0)
    async with AsyncClient(server.url, ident, channel="nowhere") as c:
        with pytest.raises(sdk.UnknownChannel):
            await c.height()
    async with AsyncClient("http://127.0.0.1:1/", ident) as c:
        with pytest.raises(sdk.TransportError):
            await c.height()
    async with AsyncClient(server.url) as c:
        with pytest.raises(ValueError, match="identity"):
            await c.invoke("kv", "put", "k", b"")


async def test_server_rejects_a_signature_over_another_proposal(server: Any, fake: Any, ident: ClientIdentity) -> None:
    p, _ = build_proposal(ident, "city", "kv", "put", ["k", b"v"])
    _, other_sig = build_proposal(ident, "city", "kv", "put", ["k", b"w"])
    async with AsyncClient(server.url, ident) as c:
        with pytest.raises(sdk.TxRejected, match="bad creator signature"):
            await c.call("tx_submit", {"proposal": proposal_to_hex(p), "signature": to_hex(other_sig)})
    assert fake.verified_signatures == 0


async def test_config_update_needs_admins(server: Any, fake: Any, tmp_path: Path, fakemod: Any) -> None:
    admin = ClientIdentity.load(*fakemod.make_identity(tmp_path, "council", "admin", "root"))
    user = ClientIdentity.load(*fakemod.make_identity(tmp_path, "council", "client", "gail"))
    cfg = ChannelConfig("city", 1, (OrgConfig("council", b"ca"),), (), BatchConfig(max_tx_count=10), (), "x")
    async with AsyncClient(server.url, admin) as c:
        r = await c.config_update(cfg, [admin])
        assert r["code"] == "VALID"
        assert fake.config_updates == [tuple(_tuple(cfg.to_obj()))]
        with pytest.raises(sdk.Unauthorized):
            await c.config_update(dataclasses.replace(cfg, sequence=2), [user])


def _tuple(obj: Any) -> Any:
    return tuple(_tuple(x) for x in obj) if isinstance(obj, list) else obj


async def test_subscribe_async(server: Any, fake: Any, ident: ClientIdentity) -> None:
    async with AsyncClient(server.url, ident) as c:
        events = await c.subscribe(["tx"])
        assert events.id is not None
        r = await c.invoke("kv", "put", "k", b"v")
        ev = await asyncio.wait_for(events.__anext__(), 5)
        data = {"tx_id": to_hex(r.tx_id), "block_number": 1, "code": "VALID"}
        assert ev == {"kind": "tx", "channel": "city", "data": data}
        await events.aclose()
        await wait_for(lambda: not fake.subscribers)

        async def first_block() -> dict[str, Any]:
            async for ev in c.subscribe(["block"]):  # subscribes lazily on first iteration
                return ev
            raise AssertionError("unreachable")

        task = asyncio.create_task(first_block())
        await wait_for(lambda: bool(fake.subscribers))
        await c.invoke("kv", "put", "k2", b"v")
        assert (await asyncio.wait_for(task, 5))["data"]["number"] == 2
        with pytest.raises(sdk.UnknownChannel):
            await AsyncClient(server.url, channel="nowhere").subscribe(["block"])


async def test_subscription_closed_by_node(server: Any, fake: Any, ident: ClientIdentity) -> None:
    from secprivnode.rpc.server import STATE_KEY

    async with AsyncClient(server.url, ident) as c, c.subscribe(["block"]) as sub:
        (session,) = server.app[STATE_KEY].sessions
        await session.ws.close(code=4000, message=b"test")
        with pytest.raises(sdk.SubscriptionClosed) as exc:
            await asyncio.wait_for(sub.__anext__(), 5)
        assert exc.value.close_code == 4000


async def wait_for(pred: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_sync_client(server: Any, fake: Any, ident: ClientIdentity) -> None:
    def scenario() -> dict[str, Any]:
        with Client(server.url, ident) as c:
            with c.subscribe(["block"]) as events:
                r = c.invoke("kv", "put", "sync", b"\x09")
                ev = next(events)
            return {
                "r": r,
                "height": c.height(),
                "state": c.state_get("kv", "sync"),
                "query": c.query("kv", "get", "sync"),
                "proof_ok": c.verify_inclusion(c.get_tx_proof(r.tx_id)),
                "block": c.get_block(r.block_number or 0),
                "event": ev,
                "tx": c.get_tx(r.tx_id),
                "status": c.tx_status(r.tx_id),
            }

    out = await asyncio.to_thread(scenario)
    assert out["r"].valid and out["height"] == 2
    assert out["state"]["value"] == b"\x09" and out["query"]["payload"] == b"\x09"
    assert out["proof_ok"] and out["block"]["number"] == 1
    assert out["event"]["kind"] == "block" and out["event"]["data"]["number"] == 1
    assert out["tx"]["code"] == "VALID" and out["status"]["block_number"] == 1
    assert fake.verified_signatures == 2  # invoke and query were both signed and verified
