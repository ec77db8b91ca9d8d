"""Joining as a member node with a certificate, and being removed.

An org admin issues a node certificate, the channel admins admit the node by a configuration
update (as a peer and an orderer), and the new node starts with only its identity, the channel's
genesis block and a seed peer. It catches up by state transfer, becomes a Raft voter, and serves
queries and endorsements. Removing it and revoking its certificate cuts it off: the others drop it
from Raft, refuse its connections, and it receives no further blocks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from framework import CityTest, TestNode, wait_until

from secprivnode.network import load_network

pytestmark = pytest.mark.functional

TXS_BEFORE = 12


class JoinAndRemoveTest(CityTest):
    def run_test(self) -> None:
        self.log.info("commit %d transactions before the new node exists", TXS_BEFORE)
        with self.nodes[0].client(self.identity("council")) as c:
            for i in range(TXS_BEFORE):
                assert c.invoke("assets", "put", f"pre-{i}", bytes([i])).valid
        height, _ = self.sync_blocks()

        self.log.info("the channel admins admit transport-node2 (org CA issues its certificate)")
        out = self.cli("node", "join", "--dir", str(self.dir), "--org", "transport", "--orderer")
        assert out.returncode == 0, out.stderr
        _, specs = load_network(self.dir)
        spec = next(s for s in specs if s.name == "transport-node2")
        doc = yaml.safe_load(spec.config.read_text())
        assert doc["p2p"]["bootstrap"] and len(doc["p2p"]["bootstrap"]) == 1, "one seed peer"
        assert not (spec.dir / "data").exists(), "the new node starts with no ledger"
        for n in self.nodes:
            cfg = n.rpc.config_get()["config"]
            assert any(x["name"] == "transport-node2" and x["orderer"] for x in cfg["nodes"]), n.name

        new = TestNode(spec, self.dir)
        self.nodes.append(new)
        new.start()
        new.wait_healthy()
        self.log.info("it catches up by state transfer and becomes a Raft voter")
        self.sync_blocks()
        assert new.height() > height
        self.assert_same_chain()
        leader = self.leader()
        wait_until(lambda: "transport-node2" in leader.rpc.raft_status()["voters"], what="promotion to voter")

        self.log.info("it serves queries and endorsements")
        with new.client(self.identity("transport")) as c:
            assert c.query("assets", "get", "pre-3")["payload"] == bytes([3])
            r = c.invoke("assets", "put", "via-new-node", b"\x2a")
        assert r.valid, r
        tx = new.rpc.chain_getTransaction(tx_id="0x" + r.tx_id.hex())
        assert any(e.startswith("transport/transport-node2") for e in tx["endorsers"]), tx["endorsers"]
        self.sync_blocks()

        self.log.info("remove it and revoke its certificate")
        out = self.cli("node", "remove", "--dir", str(self.dir), "--name", "transport-node2")
        assert out.returncode == 0, out.stderr
        others = [n for n in self.nodes if n is not new]
        leader = self.leader(among=others)
        wait_until(
            lambda: "transport-node2" not in leader.rpc.raft_status()["voters"] + leader.rpc.raft_status()["learners"],
            what="removal from Raft",
        )
        wait_until(
            lambda: all("transport-node2" not in {p["name"] for p in n.rpc.node_peers()} for n in others),
            what="every node dropping the removed node",
        )
        cut_at = new.height()
        with others[0].client(self.identity("council")) as c:
            for i in range(3):
                assert c.invoke("assets", "put", f"after-{i}", b"\x01").valid
        final, _ = self.sync_blocks(others)
        assert final >= cut_at + 3
        assert new.height() == cut_at, "a removed, revoked node must not receive new blocks"
        self.log.info("others at height %d, the removed node stays at %d", final, cut_at)


def test_join_with_certificate_then_remove(tmp_path: Path) -> None:
    JoinAndRemoveTest().main(tmp_path)
