"""The gossip service over the in-memory transport: same interface as TLS, real asyncio."""

from __future__ import annotations

import random

from p2p_harness import NOW, MemStore, Pki, wait_until_async

from crypto.msp import Role
from p2p.errors import PeerUnavailable
from p2p.gossip.common import GossipConfig
from p2p.gossip.core import GossipCore
from p2p.gossip.service import GossipService
from p2p.memory import MemoryNetwork, MemoryTransport
from p2p.messages import AppMessage
from p2p.verify import verify_block
from storage.testing import ChainBuilder, Signer, make_tx

CH = "city"


async def test_gossip_service_over_memory_transport() -> None:
    pki = Pki.create(["council", "transport"])
    msp = pki.msp()
    orderer = ChainBuilder(CH, Signer.generate(random.Random(1), label=b"orderer"))
    net = MemoryNetwork()
    services: dict[str, GossipService] = {}
    stores: dict[str, MemStore] = {}
    cfg = GossipConfig(anti_entropy_interval_ms=100, alive_interval_ms=100)
    for i in range(4):
        name, org = f"n{i}", ("council", "transport")[i % 2]
        creds = pki.node(org, name)
        t = MemoryTransport(net, name, org, (CH,))
        stores[name] = MemStore()
        core = GossipCore(
            node_id=name,
            org=org,
            address=t.address,
            cert_der=creds.identity.cert_der,
            key=creds.key,
            incarnation=1,
            stores={CH: stores[name]},
            resolve_key=lambda ch, cert: orderer.resolver(cert),
            validate_cert=lambda cert, now: msp.validate(cert, now=NOW, roles={Role.NODE}),
            rng=random.Random(i),
            config=cfg,
        )
        services[name] = GossipService(t, core, tick_interval_s=0.01)
    # a line n0 - n1 - n2 - n3: membership discovery (Discovered -> add_peer) completes the mesh
    for i in range(3):
        services[f"n{i}"].transport.add_peer(f"n{i + 1}", f"mem:n{i + 1}")
    for s in services.values():
        await s.transport.start()
        await s.start()
    try:
        rng = random.Random(2)
        for _ in range(30):
            block = orderer.block([make_tx(CH, Signer.generate(rng), [], rng, writes=[("k", b"v")])])
            data = block.encode()
            st = stores["n0"]
            vb = verify_block(
                data,
                channel=CH,
                number=st.height,
                previous_hash=st.tip_hash or b"\x00" * 32,
                resolve_key=lambda c, cert: orderer.resolver(cert),
            )
            st.deliver([vb])
            services["n0"].publish_block(CH, vb.number, data)
        await wait_until_async(lambda: all(s.height == 30 for s in stores.values()), 10, "all at height 30")
        assert len({s.tip_hash for s in stores.values()}) == 1
        await wait_until_async(
            lambda: services["n0"].transport.connected_peers() == ["n1", "n2", "n3"], 10, "mesh via discovery"
        )
        # application carriage works over the same interface
        got: list[object] = []
        services["n3"].transport.register_app_handler(5, lambda p, x: got.append((p, x)))

        async def answer(peer: str, payload: object) -> object:
            return ["ok", payload]

        services["n3"].transport.register_request_handler(6, answer)
        assert services["n0"].transport.send("n3", AppMessage(5, b"raft"))
        assert await services["n0"].transport.request("n3", 6, 42, timeout_s=1) == ("ok", 42)
        await wait_until_async(lambda: got == [("n0", b"raft")], 2, "app message")
        net.partition("n0", "n3")
        try:
            await services["n0"].transport.request("n3", 6, 1, timeout_s=1)
            raise AssertionError("request over a cut link must fail")
        except PeerUnavailable:
            pass
    finally:
        for s in services.values():
            await s.stop()
            await s.transport.stop()
