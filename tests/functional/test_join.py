"""Joining as a member node with a certificate, and being removed.

An org admin issues a node certificate, the channel admins admit the node by a configuration
update (as a peer and an orderer), and the new node starts with only its identity, the channel's
genesis block and a seed peer. It catches up by state transfer, becomes a Raft voter, and serves
queries and endorsements. Removing it and revoking its certificate cuts it off: the others drop it
from Raft, refuse its connections, and it receives no further blocks; a removed node left running
says so in its log and /healthz and refuses transactions. By default `node remove` stops a local
node and takes it out of network.yaml, so `network up` afterwards starts only the members.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from framework import CityTest, TestNode, pid_alive, wait_until

from secprivnode.client import TxRejected
from secprivnode.network import load_network

pytestmark = pytest.mark.functional

TXS_BEFORE = 12


class JoinAndRemoveTest(CityTest):
    as_orderer = True  # join as a peer and an orderer (a Raft learner, then a voter)

    def run_test(self) -> None:
        self.log.info("commit %d transactions before the new node exists", TXS_BEFORE)
        with self.nodes[0].client(self.identity("council")) as c:
            for i in range(TXS_BEFORE):
                assert c.invoke("assets", "put", f"pre-{i}", bytes([i])).valid
        height, _ = self.sync_blocks()

        self.log.info("the channel admins admit transport-node2 (org CA issues its certificate)")
        out = self.cli("node", "join", "--dir", str(self.dir), "--org", "transport", *(["--orderer"] * self.as_orderer))
        assert out.returncode == 0, out.stderr
        _, specs = load_network(self.dir)
        spec = next(s for s in specs if s.name == "transport-node2")
        doc = yaml.safe_load(spec.config.read_text())
        assert doc["p2p"]["bootstrap"] and len(doc["p2p"]["bootstrap"]) == 1, "one seed peer"
        assert not (spec.dir / "data").exists(), "the new node starts with no ledger"
        for n in self.nodes:
            cfg = n.rpc.config_get()["config"]
            assert any(x["name"] == "transport-node2" and x["orderer"] == self.as_orderer for x in cfg["nodes"]), n.name

        new = TestNode(spec, self.dir)
        self.nodes.append(new)
        new.start()
        new.wait_healthy()
        self.log.info("it catches up by state transfer%s", " and becomes a Raft voter" * self.as_orderer)
        self.sync_blocks()
        assert new.height() > height
        self.assert_same_chain()
        if self.as_orderer:
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

        self.log.info("remove it and revoke its certificate, leaving its process running")
        out = self.cli("node", "remove", "--dir", str(self.dir), "--name", "transport-node2", "--keep-running")
        assert out.returncode == 0, out.stderr
        assert new.running(), "--keep-running leaves the process alone"
        others = [n for n in self.nodes if n is not new]
        leader = self.leader(among=others)
        wait_until(
            lambda: "transport-node2" not in leader.rpc.raft_status()["voters"] + leader.rpc.raft_status()["learners"],
            what="removal from Raft",
        )  # trivially true for a node that was never an orderer
        wait_until(
            lambda: all("transport-node2" not in {p["name"] for p in n.rpc.node_peers()} for n in others),
            what="every node dropping the removed node",
        )
        self.log.info("the removed node knows: a failing membership check, writes refused, one log line")
        # Other checks (p2p, raft) fail too once the members drop it; wait for the membership one.
        health = wait_until(
            lambda: "membership:city" in (h := json.loads(new.ops_get("/healthz")[1]))["failing"] and h,
            what="the removed node failing its membership check",
        )
        assert (
            "removed from channel city" in health["checks"]["membership:city"]["detail"]
            or "revoked" in (health["checks"]["membership:city"]["detail"])
        ), health
        with new.client(self.identity("transport")) as c, pytest.raises(TxRejected) as refused:
            c.invoke("assets", "put", "after-removal", b"\x01")
        assert "no longer serves writes on channel city" in str(refused.value), refused.value
        assert new.log_tail(400).count("no longer accepts transactions") == 1, new.log_tail()
        assert wait_until(lambda: new.rpc.node_peers() == [], what="the removed node stops dialling")

        cut_at = new.height()
        with others[0].client(self.identity("council")) as c:
            for i in range(3):
                assert c.invoke("assets", "put", f"after-{i}", b"\x01").valid
        final, _ = self.sync_blocks(others)
        assert final >= cut_at + 3
        assert new.height() == cut_at, "a removed, revoked node must not receive new blocks"
        self.log.info("others at height %d, the removed node stays at %d", final, cut_at)
        new.stop()
        for n in others:
            refusals = [ln for ln in n.log_tail(5000).splitlines() if "refusing connection" in ln and "node2" in ln]
            assert len(refusals) <= 1, f"{n.name} keeps logging refusals of the removed node: {refusals}"


class PeerJoinAndRemoveTest(JoinAndRemoveTest):
    """The same with a peer that orders nothing: it learns of its removal from the block that a
    member pushes to it before dropping it (gossip no longer serves a node the config dropped)."""

    as_orderer = False


class RemoveThenRestartTest(CityTest):
    """`node remove` stops a local node and forgets it, so the network restarts without it."""

    def run_test(self) -> None:
        d = str(self.dir)
        self.log.info("admit health-node2 as an orderer and start it with `network up`")
        out = self.cli("node", "join", "--dir", d, "--org", "health", "--orderer")
        assert out.returncode == 0, out.stderr
        out = self.cli("network", "up", "--dir", d)
        assert out.returncode == 0, out.stderr
        spec = next(s for s in load_network(self.dir)[1] if s.name == "health-node2")
        pid = int(spec.pid_file.read_text())
        assert pid_alive(pid)
        leader = self.leader()
        wait_until(lambda: "health-node2" in leader.rpc.raft_status()["voters"], what="promotion to voter")

        self.log.info("remove it: its process stops and the network files forget it")
        out = self.cli("node", "remove", "--dir", d, "--name", "health-node2")
        assert out.returncode == 0, out.stderr
        wait_until(lambda: not pid_alive(pid), what="the removed node's process exiting")
        assert "health-node2" not in {s.name for s in load_network(self.dir)[1]}
        out = self.cli("network", "status", "--dir", d, "--json")
        assert out.returncode == 0, out.stderr
        assert "health-node2" not in {n["name"] for n in json.loads(out.stdout)["nodes"]}

        self.log.info("`network down` then `network up` brings the remaining nodes back")
        out = self.cli("network", "down", "--dir", d)
        assert out.returncode == 0, out.stderr
        for n in self.nodes:
            n.wait_exit()
        try:
            out = self.cli("network", "up", "--dir", d, "--timeout", "90")
            assert out.returncode == 0, out.stdout + out.stderr
            with self.nodes[0].client(self.identity("council")) as c:
                assert c.invoke("assets", "put", "after-restart", b"\x02").valid
        finally:
            self.cli("network", "down", "--dir", d)


def test_join_with_certificate_then_remove(tmp_path: Path) -> None:
    JoinAndRemoveTest().main(tmp_path)


def test_join_as_peer_then_remove(tmp_path: Path) -> None:
    PeerJoinAndRemoveTest().main(tmp_path)


def test_remove_stops_the_node_and_network_up_succeeds(tmp_path: Path) -> None:
    RemoveThenRestartTest().main(tmp_path)
