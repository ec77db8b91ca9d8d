"""Two channels side by side on one network: a channel among a subset of the organisations, with
its own genesis, Raft group and ledger, and an outsider node that never holds its blocks — not
even when it claims the channel in its configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from framework import CityTest, RpcFailure, wait_until

from secprivnode.client import Client, RpcError

pytestmark = pytest.mark.functional

CHANNEL = "health-data"
MARKER = b"health-data-only-7f3a9c51e2"


def _files_contain(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


class TwoChannelsTest(CityTest):
    def run_test(self) -> None:
        council, transport, health = self.nodes
        members = [council, health]

        self.log.info("create %s among council and health", CHANNEL)
        out = self.cli("channel", "create", "--dir", str(self.dir), "--name", CHANNEL, "--orgs", "council,health",
                       "--no-restart", "--json")  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["nodes"] == ["council-node1", "health-node1"]
        bad = self.cli("channel", "create", "--dir", str(self.dir), "--name", CHANNEL, "--orgs", "council")
        assert bad.returncode != 0 and "already exists" in bad.stderr
        bad = self.cli("channel", "create", "--dir", str(self.dir), "--name", "x2", "--orgs", "council,nowhere")
        assert bad.returncode != 0 and "unknown organisations" in bad.stderr
        listed = json.loads(self.cli("channel", "list", "--dir", str(self.dir), "--json").stdout)
        assert [(c["name"], c["orgs"]) for c in listed] == [
            ("city", ["council", "health", "transport"]),
            (CHANNEL, ["council", "health"]),
        ]

        self.log.info("the member nodes join it by configuration (restarted one at a time)")
        for n in members:
            n.stop()
            n.start()
        for n in members:  # healthy once the channel's two orderers elected a leader
            n.wait_healthy()
        assert {n.rpc.raft_status(channel=CHANNEL)["leader"] for n in members} <= {"council-node1", "health-node1"}

        self.log.info("transactions on both channels")
        with Client(health.url, self.identity("health"), CHANNEL) as c:
            for i in range(3):
                r = c.invoke("assets", "put", f"reading-{i}", MARKER + bytes([i]))
                assert r.valid, r
            assert c.query("assets", "get", "reading-2")["payload"] == MARKER + b"\x02"
        with transport.client(self.identity("transport")) as c:
            assert c.invoke("assets", "put", "on-city", b"\x01").valid
        self.sync_blocks()  # the default channel, on all three

        def heights() -> set[int]:
            return {int(n.rpc.chain_height(channel=CHANNEL)) for n in members}

        wait_until(lambda: heights() == {4}, what=f"{CHANNEL} at height 4 on both members")
        cfg = council.rpc.config_get(channel=CHANNEL)["config"]
        assert sorted(o["name"] for o in cfg["orgs"]) == ["council", "health"]
        shown = self.cli("channel", "show", "--dir", str(self.dir), "--channel", CHANNEL)
        assert shown.returncode == 0 and json.loads(shown.stdout)["channel"] == CHANNEL

        self.log.info("the outsider does not serve the channel and holds none of its bytes")
        with pytest.raises(RpcFailure, match=CHANNEL):
            transport.rpc.chain_height(channel=CHANNEL)
        with Client(transport.url, self.identity("transport"), CHANNEL) as c, pytest.raises(RpcError, match=CHANNEL):
            c.invoke("assets", "put", "k", b"")
        assert _files_contain(health.spec.dir / "data", MARKER), "control: the member's files hold the data"
        assert _files_contain(transport.spec.dir / "data", MARKER) == []

        self.log.info("the outsider claims the channel in its own configuration: the members still send nothing")
        doc = yaml.safe_load(transport.spec.config.read_text())
        genesis = self.dir / "channel" / f"{CHANNEL}.block"
        doc["channels"].append({"name": CHANNEL, "genesis": str(genesis)})
        transport.spec.config.write_text(yaml.safe_dump(doc, sort_keys=False))
        transport.stop()
        transport.start()
        transport.wait_healthy()
        with health.client(self.identity("health")) as c:  # the default channel keeps reaching it
            for i in range(5):
                assert c.invoke("assets", "put", f"city-{i}", b"\x02").valid
        self.sync_blocks()
        assert int(transport.rpc.chain_height(channel=CHANNEL)) == 1, "only the genesis it was given"
        with Client(council.url, self.identity("council"), CHANNEL) as c:
            assert c.invoke("assets", "put", "reading-3", MARKER + b"\x03").valid
        self.sync_blocks()
        assert int(transport.rpc.chain_height(channel=CHANNEL)) == 1
        assert _files_contain(transport.spec.dir / "data", MARKER) == []


def test_two_channels_side_by_side(tmp_path: Path) -> None:
    TwoChannelsTest().main(tmp_path)


def test_channel_create_restarts_the_members_of_a_running_network(tmp_path: Path) -> None:
    """The operator's path: `network up`, then `channel create` restarts the member nodes itself."""
    import random

    from framework import free_base_port

    from secprivnode.network import init_network, load_network, network_down, network_up, node_healthy

    d = tmp_path / "city"
    init_network(d, orgs=3, base_port=free_base_port(3, random.Random()))
    test = CityTest()
    test.dir = d
    try:
        network_up(d)
        out = test.cli("channel", "create", "--dir", str(d), "--name", "transit-ops", "--orgs", "council,transport")
        assert out.returncode == 0, out.stderr
        _, nodes = load_network(d)
        out = test.cli(
            *("tx", "invoke", "--dir", str(d), "--node", "transport-node1", "--identity", "transport/client1"),
            *("--channel", "transit-ops", "--contract", "assets", "--fn", "put", "--args", '["k", "0x01"]'),
        )
        assert out.returncode == 0, out.stderr + out.stdout
        out = test.cli("chain", "height", "--dir", str(d), "--node", "council-node1", "--channel", "transit-ops")
        assert out.returncode == 0 and int(out.stdout.split()[-1]) >= 2, out.stdout + out.stderr
        out = test.cli("chain", "height", "--dir", str(d), "--node", "health-node1", "--channel", "transit-ops")
        assert out.returncode != 0 and "transit-ops" in out.stderr
        assert [n.name for n in nodes if not node_healthy(n)] == []
    finally:
        network_down(d)
