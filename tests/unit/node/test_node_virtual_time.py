"""Whole nodes under virtual time: three orderer nodes and a peer, assembled by
``secprivnode.node.Node`` as in production but over the in-memory transport and one virtual
clock, elect a Raft leader, endorse, order and commit transactions (the peer receives its blocks
by gossip). Time moves only when the test advances it: Raft ticks, batch timeouts, gossip ticks
and the membership reconciler all sleep on that clock, so what takes seconds of node time runs
in a fraction of that, and block timestamps come from it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pipeline_kit import ASSETS_POLICY, BLOCK_MS0, CHANNEL, NOW, Pki, channel_config
from virtual_clock import VirtualClock

from crypto.msp import Identity
from crypto.signing import get_backend
from p2p.api import PeerTransport
from p2p.memory import MemoryNetwork, MemoryTransport
from secprivnode import wire
from secprivnode.api import TxRejected
from secprivnode.config import ALL_ROLES, ChannelSpec, IdentitySection, NodeConfig, NodeSection, RpcSection
from secprivnode.genesis import genesis_block
from secprivnode.network import assets_package
from secprivnode.node import Node
from storage.model import NONCE_BYTES, ChannelNode, ContractDefinition, Proposal, ProposalHeader, ValidationCode

ORDERERS = ("council/council-node1", "transport/transport-node1", "health/health-node1")
PEER = "council/council-node2"  # no orderer role: its blocks come by gossip only
NODES = (*ORDERERS, PEER)
SEED = 1234
STEP_S = 0.05  # virtual seconds per step: half a Raft tick
WALL_START_MS = (NOW + 100) * 1000  # the nodes' calendar: inside every test certificate's validity


class Network:
    def __init__(self, pki: Pki, nodes: list[Node], clock: VirtualClock, net: MemoryNetwork) -> None:
        self.pki = pki
        self.net = net
        self.nodes = nodes
        self.clock = clock
        self._nonce = 0

    def proposal(self, who: str, function: str, *args: str) -> tuple[Proposal, bytes]:
        self._nonce += 1
        m = self.pki[who]
        header = ProposalHeader(CHANNEL, m.cert, self._nonce.to_bytes(NONCE_BYTES, "big"), 0)
        p = Proposal(header, "assets", function, args)
        return p, get_backend().sign(m.key, p.hash())

    def leaders(self) -> set[str | None]:
        return {n.channels[CHANNEL].leader() for n in self.nodes if n.config.has_role("orderer")}

    def committed_everywhere(self, tx_ids: list[bytes]) -> bool:
        return all(n.channels[CHANNEL].ledger.tx_location(t) is not None for n in self.nodes for t in tx_ids)


def _write_identity(pki: Pki, who: str, d: Path) -> IdentitySection:
    m = pki[who]
    d.mkdir(parents=True, exist_ok=True)
    cert = x509.load_der_x509_certificate(m.cert).public_bytes(serialization.Encoding.PEM)
    (d / "node.crt").write_bytes(cert)
    (d / "node.key").write_bytes(m.key.to_pem())
    return IdentitySection(d / "node.crt", d / "node.key")


@pytest.fixture
async def network(pki: Pki, tmp_path: Path) -> AsyncIterator[Network]:
    nodes_cfg = tuple(  # the addresses are never dialled: the in-memory transport links by name
        ChannelNode(pki[w].identity.name, pki[w].identity.org, f"127.0.0.1:{7001 + i}", orderer=w in ORDERERS)
        for i, w in enumerate(NODES)
    )
    assets = assets_package(ASSETS_POLICY)  # installed by the genesis block, as a network's is
    definition = ContractDefinition("assets", assets.version, ASSETS_POLICY, assets.hash, 1)
    config = channel_config(pki, nodes=nodes_cfg, contracts=(definition,))
    admin = pki["council/admin"]
    genesis = genesis_block(
        config,
        admin_cert_der=admin.cert,
        admin_key=admin.key,
        timestamp_ms=BLOCK_MS0,
        packages=[assets.code_bytes()],
    )
    genesis_path = tmp_path / "city.block"
    genesis_path.write_bytes(genesis.encode())
    clock = VirtualClock(WALL_START_MS)
    net = MemoryNetwork()

    def memory_transport(ident: Identity) -> PeerTransport:
        return MemoryTransport(net, ident.name, ident.org, [CHANNEL])

    nodes: list[Node] = []
    try:
        for i, who in enumerate(NODES):
            ident = pki[who].identity
            cfg = NodeConfig(
                node=NodeSection(
                    ident.name,
                    ident.org,
                    tmp_path / ident.name,
                    ("committer", "endorser", "gateway") if who == PEER else ALL_ROLES,
                ),
                identity=_write_identity(pki, who, tmp_path / "identities" / ident.name),
                channels=(ChannelSpec(CHANNEL, genesis_path),),
                rpc=RpcSection(listen="127.0.0.1:0", operations_listen="127.0.0.1:0"),
            )
            node = Node(cfg, clock=clock, rng=random.Random(SEED + i), make_transport=memory_transport)
            await node.__aenter__()
            nodes.append(node)
        yield Network(pki, nodes, clock, net)
    finally:
        async with clock.ticking(STEP_S):  # leaders hand over and stop on node time
            for node in reversed(nodes):
                await node.__aexit__(None, None, None)


async def elect(network: Network) -> float:
    """Advance until every node knows the same Raft leader; the virtual seconds it took."""
    return await network.clock.run_until(
        lambda: len(network.leaders()) == 1 and None not in network.leaders(),
        virtual_s=30,
        step_s=STEP_S,
        what="one Raft leader known to every node",
    )


async def test_three_nodes_order_and_commit_under_virtual_time(network: Network) -> None:
    clock = network.clock
    elected = await elect(network)
    assert elected >= 1.0  # no election before the election timeout (10 ticks of 100 ms) ran out

    tx_ids = []
    for i, node in enumerate(network.nodes):  # a submission through every node's gateway
        p, sig = network.proposal("council/alice", "create", f"car-{i}", "alice")
        tx_ids.append((await node.service.tx_submit(p, sig)).tx_id)
    started_ms = clock.now_ms()
    took = await clock.run_until(
        lambda: network.committed_everywhere(tx_ids), virtual_s=20, step_s=STEP_S, what="commit on every node"
    )
    assert took < 5  # a batch timeout (200 ms) and a few Raft round trips, not real seconds

    ledgers = [n.channels[CHANNEL].ledger for n in network.nodes]
    assert len({(lg.height, lg.tip_hash) for lg in ledgers}) == 1
    for t in tx_ids:
        locs = {lg.tx_location(t) for lg in ledgers}
        assert len(locs) == 1
        (loc,) = locs
        assert loc is not None and loc[2] is ValidationCode.VALID
    # The ordering leader stamped the blocks with the virtual calendar.
    for n in range(1, ledgers[0].height):
        assert started_ms <= ledgers[0].get_header(n).timestamp_ms <= clock.now_ms()


async def test_a_refusal_forwarded_from_the_leader_comes_back_typed(network: Network) -> None:
    """A follower's gateway forwards to the leader, whose pool already holds the transaction:
    the leader answers with the DUPLICATE_TX code, and the client gets TxRejected("duplicate")."""
    await elect(network)
    (leader,) = network.leaders()
    follower = next(n for n in network.nodes if n.identity.name != leader)
    p, sig = network.proposal("council/alice", "create", "bus", "transport")
    first = await follower.service.tx_submit(p, sig)  # admitted; no time passes, so no block is cut
    with pytest.raises(TxRejected) as ei:
        await follower.service.tx_submit(p, sig)
    assert ei.value.data == {"reason": "duplicate"}
    await network.clock.run_until(
        lambda: network.committed_everywhere([first.tx_id]), virtual_s=20, step_s=STEP_S, what="commit"
    )


async def test_an_orderer_that_cannot_reach_the_leader_says_so_and_the_gateway_tries_another(
    network: Network,
) -> None:
    """The peer submits to an orderer (it orders nothing itself). The first orderer it asks cannot
    reach the Raft leader and answers UNAVAILABLE; the gateway asks the next, which forwards it."""
    await elect(network)
    (leader,) = network.leaders()
    peer = network.pki[PEER].identity.name
    followers = [n.identity.name for n in network.nodes if n.config.has_role("orderer")]
    followers.remove(str(leader))
    cut_off = followers[0]  # the first follower in the configuration's order: asked first
    network.net.partition(peer, str(leader))
    network.net.partition(cut_off, str(leader))
    node = next(n for n in network.nodes if n.identity.name == peer)
    lost = next(n for n in network.nodes if n.identity.name == cut_off)
    p, sig = network.proposal("council/alice", "create", "bus", "transport")
    tx = await node.gateway.endorse(p, sig)
    answer = await lost.channels[CHANNEL].on_submit(peer, tx.encode())
    assert list(answer[:2]) == ["err", wire.ErrorCode.UNAVAILABLE]

    p, sig = network.proposal("council/alice", "create", "tram", "transport")
    tx_id = (await node.service.tx_submit(p, sig)).tx_id
    network.net.heal(peer, str(leader))
    network.net.heal(cut_off, str(leader))
    await network.clock.run_until(
        lambda: network.committed_everywhere([tx_id]), virtual_s=30, step_s=STEP_S, what="commit"
    )
