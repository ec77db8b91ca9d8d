"""Private data between nodes (secprivnode.privnet) over a fake transport that links real nodes'
handlers: acknowledged pushes honour required peer counts and reach members only; gaps are pulled."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_kit import Chain, Pki, channel_config

from p2p.gossip.common import GossipConfig
from p2p.gossip.privdata import PrivateData
from secprivnode import wire
from secprivnode.api import Overloaded
from secprivnode.pipeline.privdata import ChannelPrivateData
from secprivnode.privnet import GossipPrivateStore, PrivateNet
from storage.model import CollectionConfig, ContractDefinition, Proposal, Transaction

ORG_OF = {
    "council-node1": "council",
    "transport-node1": "transport",
    "transport-node2": "transport",
    "health-node1": "health",
}


class Info:
    def __init__(self, org: str) -> None:
        self.org = org


class Link:
    """The transport of one node: requests go straight to the other nodes' registered handlers."""

    def __init__(self, name: str, world: dict[str, Link]) -> None:
        self.name = name
        self.world = world
        self.handlers: dict[int, Any] = {}
        self.down: set[str] = set()
        self.sent: list[tuple[str, int]] = []

    def register_request_handler(self, kind: int, handler: Any) -> None:
        self.handlers[kind] = handler

    def connected_peers(self) -> list[str]:
        return [n for n in self.world if n != self.name and n not in self.down]

    def peer_info(self, peer: str) -> Info | None:
        return Info(ORG_OF[peer]) if peer in self.world else None

    async def request(self, peer: str, kind: int, payload: Any, timeout_s: float) -> Any:
        self.sent.append((peer, kind))
        if peer in self.down:
            raise TimeoutError(f"{peer} is down")
        return await self.world[peer].handlers[kind](self.name, payload)


class Node:
    def __init__(
        self, pki: Pki, path: Path, name: str, world: dict[str, Link], coll: CollectionConfig, genesis: Any
    ) -> None:
        cfg = channel_config(pki, contracts=(ContractDefinition("assets", "1.0", "ANY(node)"),), collections=(coll,))
        self.chain = Chain(pki, path, cfg, genesis=genesis)
        self.private = ChannelPrivateData(self.chain.ledger, ORG_OF[name])
        self.chain.committer.private = self.private
        for e in self.chain.endorsers.values():
            e.private = self.private
        self.link = Link(name, world)
        world[name] = self.link
        store = GossipPrivateStore({"city": self.private})
        gossip = PrivateData(ORG_OF[name], store, store.collections, GossipConfig(), random.Random(1))
        self.net = PrivateNet(name, self.link, gossip, {"city": self.private})  # type: ignore[arg-type]
        self.net.register()


def _nodes(pki: Pki, tmp_path: Path, coll: CollectionConfig) -> dict[str, Node]:
    world: dict[str, Link] = {}
    out: dict[str, Node] = {}
    genesis = None
    for name in ORG_OF:
        out[name] = Node(pki, tmp_path / name, name, world, coll, genesis)
        genesis = out[name].chain.genesis
    return out


@pytest.fixture
def close() -> Iterator[list[Node]]:
    opened: list[Node] = []
    yield opened
    for n in opened:
        n.chain.close()


def _endorse(node: Node, key: str, value: bytes) -> tuple[Transaction, Any]:
    chain = node.chain
    p, sig = chain.propose("council/alice", "assets", "put_private", "pair", key)
    p = Proposal(p.header, p.contract, p.function, p.args, {"value": value})
    res = chain.endorsers["council/council-node1"].endorse(p, sig)
    stored = Proposal(p.header, p.contract, p.function, p.args)
    return Transaction(stored, sig, res.response, res.rwset, (res.endorsement,)), res


async def test_push_reaches_members_only_and_counts_acks(pki: Pki, tmp_path: Path, close: list[Node]) -> None:
    coll = CollectionConfig("assets", "pair", ("council", "transport"), 2, 5, 0)
    nodes = _nodes(pki, tmp_path, coll)
    close.extend(nodes.values())
    council = nodes["council-node1"]
    tx, res = _endorse(council, "k", b"secret")
    await council.net.disseminate("city", res.private)
    assert {p for p, k in council.link.sent if k == wire.PVT_PUSH} == {"transport-node1", "transport-node2"}
    for name in ("transport-node1", "transport-node2"):
        assert nodes[name].private.state.write_set(tx.tx_id, "assets", "pair") is not None
    assert nodes["health-node1"].private.state.write_set(tx.tx_id, "assets", "pair") is None

    council.link.down.add("transport-node2")  # one ack of the two required
    _, res2 = _endorse(council, "k2", b"secret2")
    with pytest.raises(Overloaded, match="reached 1 member nodes, 2 required"):
        await council.net.disseminate("city", res2.private)


async def test_receivers_refuse_what_they_may_not_hold(pki: Pki, tmp_path: Path, close: list[Node]) -> None:
    coll = CollectionConfig("assets", "pair", ("council", "transport"), 0, 5, 0)
    nodes = _nodes(pki, tmp_path, coll)
    close.extend(nodes.values())
    _, res = _endorse(nodes["council-node1"], "k", b"secret")
    blob = res.private[0].encode()
    health = nodes["health-node1"]
    answer = await health.net.on_push("council-node1", ["city", "city/assets/pair", blob])
    assert answer[0] == "err" and answer[1] == "Unauthorized"
    assert not any(b"secret" in v for _, v in health.chain.db.raw.iterator())
    transport = nodes["transport-node1"]
    bad = await transport.net.on_push("health-node1", ["city", "city/assets/pair", blob])
    assert bad[0] == "err"  # the sender is not a member either
    fetch = await nodes["council-node1"].net.on_fetch("health-node1", ["city", "assets", "pair", b"\x00" * 32])
    assert fetch[0] == "err" and fetch[1] == "Unauthorized"


async def test_missing_data_is_pulled_from_a_member(pki: Pki, tmp_path: Path, close: list[Node]) -> None:
    coll = CollectionConfig("assets", "pair", ("council", "transport"), 0, 5, 0)
    nodes = _nodes(pki, tmp_path, coll)
    close.extend(nodes.values())
    council, late = nodes["council-node1"], nodes["transport-node1"]
    tx, _ = _endorse(council, "k", b"secret")  # not disseminated: the member was down
    block = council.chain.block([tx])
    for n in nodes.values():
        n.chain.committer.commit(block)
    assert late.private.gaps() and late.private.get_private("assets", "pair", "k") is None
    await late.net.reconcile("city", late.private)
    assert late.private.gaps() == []
    assert late.private.get_private("assets", "pair", "k") == (b"secret", (1, 0))
    assert ("health-node1", wire.PVT_FETCH) not in late.link.sent  # never asks a non-member
