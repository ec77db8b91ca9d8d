"""Transactions on a 3-node network, end to end through the client SDK and JSON-RPC.

* The happy path: assets create / transfer / read, committed identically on every node, with
  inclusion proofs, state and history queries, and the CLI's network status.
* Refusals: a forged creator signature, a replayed proposal, a client of a foreign CA and a
  revoked client are refused at endorsement with their reasons; two read-modify-writes of one key
  endorsed against the same version commit as one VALID and one MVCC_READ_CONFLICT.

One network serves the module: each case uses its own asset ids, so none depends on another's
state (the revocation case, which changes the channel configuration, runs last).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from framework import CityTest, TestNode, http_post, shared_network, wait_until

from crypto.ca import CertificateAuthority, Role
from crypto.encoding import decode, encode
from secprivnode.client import (
    AsyncClient,
    ClientIdentity,
    ContractFailed,
    RpcError,
    TxRejected,
    Unauthenticated,
    build_proposal,
)
from secprivnode.rpc.codec import proposal_to_hex, to_hex
from storage.model import ChannelConfig, OrgConfig, Proposal

pytestmark = pytest.mark.functional


class TxNet(CityTest):
    """Three orgs, one node each; no run_test: the module's tests drive it."""

    def asset_id(self, what: str) -> str:
        return f"{what}-{self.rng.randrange(1 << 32):08x}"


@pytest.fixture(scope="module")
def net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TxNet]:
    yield from shared_network(TxNet(), request, tmp_path_factory)  # type: ignore[misc]


def _submit_params(proposal: Proposal, signature: bytes) -> dict[str, Any]:
    return {"proposal": proposal_to_hex(proposal), "signature": to_hex(signature)}


def _rejection(node: TestNode, proposal: Proposal, signature: bytes, method: str = "tx_submitAndWait") -> RpcError:
    """Submit over the SDK's raw call and return the error the node answered with."""
    with node.client() as c, pytest.raises(RpcError) as info:
        c.call(method, _submit_params(proposal, signature))
    return info.value


def test_happy_path(net: TxNet) -> None:
    council, transport, health = net.nodes
    asset = net.asset_id("bus")
    net.log.info("create %s through %s as council/client1", asset, council.name)
    with council.client(net.identity("council")) as c:
        created = c.invoke("assets", "create", asset, "transport", {"route": "7"})
    assert created.valid, created
    assert created.block_number is not None and created.block_number >= 1
    assert decode(created.response["payload"])["owner"] == "transport"

    net.log.info("transfer it to health through %s as transport/client1", transport.name)
    with transport.client(net.identity("transport")) as c:
        moved = c.invoke("assets", "transfer", asset, "health")
    assert moved.valid, moved
    assert moved.block_number is not None and moved.block_number > created.block_number

    net.log.info("read it back through %s", health.name)
    with health.client(net.identity("health")) as c:
        wait_until(lambda: c.height() > moved.block_number, what="health has the transfer")  # type: ignore[operator]
        read = c.query("assets", "read", asset)
    record = decode(read["payload"])
    assert record["owner"] == "health" and record["value"] == {"route": "7"}
    assert record["creator"] == "council/client1"

    height, tip = net.sync_blocks()
    net.log.info("every node at height %d, tip %s", height, tip)
    assert net.assert_same_chain() == height

    for node in net.nodes:
        net.log.info("check %s: transactions, proof, state and history", node.name)
        with node.client(net.identity(node.org)) as c:
            for r in (created, moved):
                tx = c.get_tx(r.tx_id)
                assert (tx["block"], tx["code"]) == (r.block_number, "VALID")
                proof = c.get_tx_proof(r.tx_id)
                block = c.get_block(r.block_number)  # type: ignore[arg-type]
                assert c.verify_inclusion(proof, bytes.fromhex(block["hash"][2:]))
                forged = {**proof, "tx_hash": "0x" + "00" * 32}
                assert not c.verify_inclusion(forged), "a proof of another leaf must not verify"
            assert tx["function"] == "transfer" and tx["creator"].startswith("transport/client1")
            state = c.state_get("assets", f"asset/{asset}")
            assert state is not None
            assert decode(state["value"])["owner"] == "health"
            assert state["version"][0] == moved.block_number
            history = c.state_get_history("assets", f"asset/{asset}")
            assert [h["tx_id"] for h in history] == ["0x" + moved.tx_id.hex(), "0x" + created.tx_id.hex()]
            assert [h["version"][0] for h in history] == [moved.block_number, created.block_number]
            newest = c.state_get_history("assets", f"asset/{asset}", limit=1)
            assert [h["tx_id"] for h in newest] == ["0x" + moved.tx_id.hex()]
            rows = c.state_get_range("assets", f"asset/{asset}", f"asset/{asset}\x00")
            assert [r["key"] for r in rows] == [f"asset/{asset}"]

    net.log.info("network status --json through the CLI")
    done = net.cli("network", "status", "--dir", str(net.dir), "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert [n["name"] for n in status["nodes"]] == [n.name for n in net.nodes]
    for row, node in zip(status["nodes"], net.nodes, strict=True):
        assert row["rpc"] == node.url
        assert row["pid"] == node.pid
        assert "orderer" in row["roles"] and "gateway" in row["roles"]
        assert row["healthy"] is True
    assert status["leader"] == net.leader().name


def test_contract_error_is_reported_and_nothing_is_ordered(net: TxNet) -> None:
    node = net.nodes[2]
    asset = net.asset_id("bench")
    with node.client(net.identity("health")) as c:
        assert c.invoke("assets", "create", asset, "health").valid
        height = c.height()
        net.log.info("creating %s again: the contract answers 409", asset)
        with pytest.raises(ContractFailed) as info:
            c.invoke("assets", "create", asset, "someone")
        assert info.value.code == -32004 and "already exists" in info.value.message
        net.log.info("a query of a missing asset answers 404")
        with pytest.raises(ContractFailed) as info:
            c.query("assets", "read", net.asset_id("nowhere"))
        assert info.value.data["status"] == 404
        net.log.info("nothing was ordered: the next transaction is alone in the next block")
        after = c.invoke("assets", "create", net.asset_id("after"), "health")
        assert after.valid and after.block_number == height
        assert c.get_block(height)["tx_ids"] == ["0x" + after.tx_id.hex()]


def test_only_the_owner_organisation_changes_an_asset(net: TxNet) -> None:
    transport = net.nodes[1]
    asset = net.asset_id("tram")
    with transport.client(net.identity("transport")) as c:
        created = c.invoke("assets", "create", asset, "transport", {"line": "4"})
        assert created.valid, created
        height = c.height()
    net.log.info("a council client may not update transport's %s: 403, nothing ordered", asset)
    for who in (("council", "client1"), ("council", "admin"), ("health", "authority")):
        with transport.client(net.identity(*who)) as c, pytest.raises(ContractFailed) as refused:
            c.invoke("assets", "update", asset, {"line": "5"})
        assert "403" in str(refused.value) and "owner organisation 'transport'" in str(refused.value), refused.value
    with transport.client(net.identity("transport", "client2")) as c:
        assert c.height() == height, "a refused update must not be ordered"
        updated = c.invoke("assets", "update", asset, {"line": "5"})
        assert updated.valid, updated
        value = decode(c.query("assets", "read", asset)["payload"])
    assert value["value"] == {"line": "5"}
    block = transport.rpc.chain_getBlockByNumber(number=updated.block_number)
    assert block["timestamp_ms"] >= value["updated_after_ms"], "its block is at or after the time it records"

    net.log.info("chain contracts lists the assets contract and its functions")
    out = net.cli("chain", "contracts", "--dir", str(net.dir))
    assert out.returncode == 0, out.stderr
    assert "assets 1.0 (installed 1.0)" in out.stdout and "update(asset_id, value)" in out.stdout, out.stdout


def test_forged_creator_signature_is_refused(net: TxNet) -> None:
    council = net.nodes[0]
    asset = net.asset_id("forged")
    victim, thief = net.identity("council"), net.identity("transport")
    net.log.info("a proposal naming council/client1 as creator, signed with transport/client1's key")
    proposal, _ = build_proposal(victim, net.channel, "assets", "create", [asset, "thief"])
    err = _rejection(council, proposal, thief.sign(proposal.hash()))
    assert isinstance(err, TxRejected) and err.code == -32003, err
    assert err.data["reason"] == "bad_signature"

    net.log.info("the creator's own signature over a different proposal")
    _, other_sig = build_proposal(victim, net.channel, "assets", "create", [asset, "someone-else"])
    err = _rejection(net.nodes[1], proposal, other_sig)
    assert err.code == -32003 and err.data["reason"] == "bad_signature"

    net.log.info("nothing was ordered")
    assert council.rpc.tx_status(tx_id=to_hex(proposal.tx_id))["status"] == "unknown"
    with council.client(victim) as c:
        assert c.state_get("assets", f"asset/{asset}") is None


def test_replayed_proposal_is_refused(net: TxNet) -> None:
    transport, health = net.nodes[1], net.nodes[2]
    proposal, sig = build_proposal(
        net.identity("health"), net.channel, "assets", "create", [net.asset_id("lamp"), "health"]
    )
    net.log.info("submit once through %s", transport.name)
    first = transport.rpc.tx_submitAndWait(**_submit_params(proposal, sig))
    assert first["code"] == "VALID"
    net.sync_blocks()
    for node in (transport, health):
        net.log.info("replay the same signed proposal through %s", node.name)
        err = _rejection(node, proposal, sig)
        assert err.code == -32003 and err.data["reason"] == "duplicate_txid", err
    net.log.info("the transaction is in the ledger once")
    assert transport.rpc.tx_status(tx_id=first["tx_id"])["block"] == first["block_number"]


def test_foreign_ca_identity_is_refused(net: TxNet) -> None:
    now = int(time.time()) - 60
    for org in ("council", "rogue"):
        net.log.info("a client issued by a throwaway CA calling itself %r", org)
        ca = CertificateAuthority.create(org, now=now)
        key, cert_pem = ca.issue("mallory", Role.CLIENT, now=now)
        mallory = ClientIdentity.from_pem(cert_pem, key.to_pem())
        proposal, sig = build_proposal(mallory, net.channel, "assets", "create", [net.asset_id("fake"), org])
        err = _rejection(net.nodes[0], proposal, sig)
        assert err.code == -32003 and err.data["reason"] == "unknown_identity", err
        with net.nodes[2].client(mallory) as c, pytest.raises(TxRejected):
            c.query("assets", "list")


def _wait_committed(node: TestNode, tx_id: str) -> dict[str, Any]:
    def committed() -> dict[str, Any] | None:
        st = node.rpc.tx_status(tx_id=tx_id)
        return st if st["status"] == "committed" else None

    return wait_until(committed, what=f"{tx_id} committed on {node.name}")


def test_conflicting_writes_one_valid_one_mvcc_conflict(net: TxNet) -> None:
    council, transport = net.nodes[0], net.nodes[1]
    me = net.identity("council")
    # Both transfers must be endorsed before either commits. Sending them in one JSON-RPC batch
    # makes that all but certain (the batch timeout is 200 ms); the read versions recorded in the
    # ledger show whether it happened, and only then is the outcome judged.
    for attempt in range(1, 4):
        asset = net.asset_id("bike")
        with council.client(me) as c:
            assert c.invoke("assets", "create", asset, "council").valid
        net.sync_blocks()  # the transfers are endorsed on transport-node1: it must have the asset
        proposals = [
            build_proposal(me, net.channel, "assets", "transfer", [asset, owner]) for owner in ("transport", "health")
        ]
        batch = [
            {"jsonrpc": "2.0", "id": i, "method": "tx_submit", "params": _submit_params(p, s)}
            for i, (p, s) in enumerate(proposals)
        ]
        net.log.info("attempt %d: two transfers of %s in one batch to %s", attempt, asset, transport.name)
        status, body = http_post(transport.url, json.dumps(batch).encode())
        assert status == 200
        replies = sorted(json.loads(body), key=lambda r: r["id"])
        assert all("result" in r for r in replies), replies
        tx_ids = [r["result"] for r in replies]
        assert tx_ids == [to_hex(p.tx_id) for p, _ in proposals]
        outcomes = [_wait_committed(council, t) for t in tx_ids]
        reads = [council.rpc.chain_getTransaction(tx_id=t)["rwset"]["reads"] for t in tx_ids]
        if reads[0] != reads[1]:
            net.log.info("the second transfer was endorsed after the first committed; again")
            continue
        codes = sorted(o["code"] for o in outcomes)
        net.log.info("codes %s in blocks %s", codes, [o["block"] for o in outcomes])
        assert codes == ["MVCC_READ_CONFLICT", "VALID"]
        winner = next(i for i, o in enumerate(outcomes) if o["code"] == "VALID")
        with council.client(me) as c:
            state = c.state_get("assets", f"asset/{asset}")
        assert state is not None
        assert decode(state["value"])["owner"] == ("transport", "health")[winner]
        net.sync_blocks()
        for node in net.nodes:
            assert [node.rpc.tx_status(tx_id=t)["code"] for t in tx_ids] == [o["code"] for o in outcomes]
        return
    pytest.fail("three attempts never had both transfers endorsed against the same version")


def _config_sequence_is(node: TestNode, sequence: int) -> bool:
    return bool(node.rpc.config_get()["sequence"] == sequence)


def _crl_der(pem: bytes) -> bytes:
    return x509.load_pem_x509_crl(pem).public_bytes(serialization.Encoding.DER)


def test_revoked_client_is_refused_after_the_crl_reaches_the_channel(net: TxNet) -> None:
    council = net.nodes[0]
    client2 = net.identity("council", "client2")
    with council.client(client2) as c:
        assert c.invoke("assets", "create", net.asset_id("before"), "council").valid

    net.log.info("revoke council/client2 with the CA tool")
    ca_dir = net.dir / "crypto" / "council" / "ca"
    done = net.cli("ca", "revoke", "--ca-dir", str(ca_dir), "--cert", str(net.identity_paths("council", "client2")[0]))
    assert done.returncode == 0, done.stderr
    net.log.info("until the channel carries the new CRL, client2 is still a member")
    with council.client(client2) as c:
        assert c.invoke("assets", "create", net.asset_id("still"), "council").valid

    net.log.info("config update: council's CRL, approved by the council and transport admins")
    current = council.rpc.config_get()
    cfg = ChannelConfig.from_obj(decode(bytes.fromhex(current["config"]["encoded"][2:])))
    crl = _crl_der((ca_dir / "crl.pem").read_bytes())
    orgs = tuple(OrgConfig(o.name, o.ca_cert, (crl,)) if o.name == "council" else o for o in cfg.orgs)
    new = ChannelConfig(cfg.channel, cfg.sequence + 1, orgs, cfg.nodes, cfg.batch, cfg.contracts, cfg.admin_policy)
    admins = [net.identity("council", "admin"), net.identity("transport", "admin")]

    async def propose() -> dict[str, Any]:
        async with AsyncClient(net.nodes[1].url) as c:
            return await c.config_update(new, admins)

    result = asyncio.run(propose())
    assert result["code"] == "VALID", result
    for node in net.nodes:
        wait_until(partial(_config_sequence_is, node, new.sequence), what=f"{node.name} has the new config")
        assert encode(new.to_obj()).hex() == node.rpc.config_get()["config"]["encoded"][2:]

    for node in net.nodes:
        net.log.info("client2 is refused by %s", node.name)
        proposal, sig = build_proposal(client2, net.channel, "assets", "create", [net.asset_id("after"), "x"])
        err = _rejection(node, proposal, sig)
        assert err.code == -32003 and err.data["reason"] == "revoked_identity", err
        net.log.info("and so are its signed state reads")
        with node.client(client2) as c, pytest.raises(Unauthenticated) as info:
            c.state_get("assets", "asset/anything")
        assert info.value.code == -32010 and info.value.data["reason"] == "revoked"
    net.log.info("council/client1 is unaffected")
    with council.client(net.identity("council")) as c:
        assert c.invoke("assets", "create", net.asset_id("client1"), "council").valid
