"""Gossip core in a simulated network with virtual time: dissemination, catch-up, penalties,
private data and membership. Every message crosses a real encode/decode of the framing."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest
from p2p_harness import NOW, MemPrivate, MemStore, Pki

from crypto.msp import MSP, Identity, Role
from crypto.signing import get_backend
from p2p.framing import FrameDecoder, encode_frame
from p2p.gossip.common import Discovered, GossipConfig, Penalise, Send
from p2p.gossip.core import GossipCore
from p2p.gossip.privdata import blob_digest
from p2p.gossip.state_transfer import READY_BATCHES_MAX, StateTransfer
from p2p.messages import Alive, BlockBatch, BlockPush, BlockRequest, Message, PvtPush
from p2p.verify import verify_block, verify_chain_segment
from storage.model import Block
from storage.testing import ChainBuilder, Signer, make_tx

CH = "city"
TICK_MS = 50
CFG = GossipConfig(
    alive_interval_ms=200,
    alive_expiry_ms=2000,
    dead_purge_ms=4000,
    anti_entropy_interval_ms=200,
    state_request_timeout_ms=1000,
    state_batch_blocks=16,
    pvt_reconcile_interval_ms=300,
    pvt_inventory_max=4,
)


@dataclass
class SimNet:
    """Nodes linked pairwise; messages queued and delivered in order; virtual time in ms."""

    pki: Pki
    msp: MSP
    orderer: ChainBuilder
    collections: dict[str, frozenset[str]] = field(default_factory=dict)
    cores: dict[str, GossipCore] = field(default_factory=dict)
    stores: dict[str, MemStore] = field(default_factory=dict)
    private: dict[str, MemPrivate] = field(default_factory=dict)
    links: set[frozenset[str]] = field(default_factory=set)
    queue: deque[tuple[str, str, bytes]] = field(default_factory=deque)
    now_ms: int = 0
    penalties: list[tuple[str, str, str]] = field(default_factory=list)
    log: list[tuple[str, str, Message]] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    drop_pushes: float = 0.0  # probability that a BlockPush is lost in transit
    loss_rng: random.Random = field(default_factory=lambda: random.Random(99))
    lost: int = 0
    members: set[str] | None = None  # the channel's member nodes; None: every node

    def add(self, name: str, org: str, seed: int) -> GossipCore:
        creds = self.pki.node(org, name)
        store, priv = MemStore(), MemPrivate()

        def validate(cert: bytes, now_s: int) -> Identity:
            return self.msp.validate(cert, now=NOW, roles={Role.NODE})

        core = GossipCore(
            node_id=name,
            org=org,
            address=f"{name}:1",
            cert_der=creds.identity.cert_der,
            key=creds.key,
            incarnation=1,
            stores={CH: store},
            resolve_key=lambda ch, cert: self.orderer.resolver(cert),
            validate_cert=validate,
            rng=random.Random(seed),
            config=CFG,
            private_store=priv,
            collections=lambda: self.collections,
            is_member=lambda ch, node: self.members is None or node in self.members,
        )
        self.cores[name], self.stores[name], self.private[name] = core, store, priv
        return core

    def connect(self, a: str, b: str) -> None:
        if a in self.down or b in self.down or frozenset((a, b)) in self.links:
            return
        self.links.add(frozenset((a, b)))
        for x, y in ((a, b), (b, a)):
            peer = self.cores[y]
            self._apply(x, self.cores[x].peer_up(y, peer.org, (CH,)))

    def disconnect(self, a: str, b: str) -> None:
        if frozenset((a, b)) in self.links:
            self.links.discard(frozenset((a, b)))
            self.cores[a].peer_down(b)
            self.cores[b].peer_down(a)

    def connect_all(self) -> None:
        names = sorted(self.cores)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                self.connect(a, b)

    def stop(self, name: str) -> None:
        for other in list(self.cores):
            self.disconnect(name, other)
        self.down.add(name)

    def start(self, name: str) -> None:
        self.down.discard(name)

    def _apply(self, src: str, outputs: list) -> None:
        for o in outputs:
            if isinstance(o, Send):
                if isinstance(o.msg, BlockPush) and self.loss_rng.random() < self.drop_pushes:
                    self.lost += 1
                    continue
                if frozenset((src, o.peer)) in self.links:
                    self.queue.append((src, o.peer, encode_frame(o.msg)))
            elif isinstance(o, Penalise):
                self.penalties.append((src, o.peer, o.reason))
                self.disconnect(src, o.peer)
            else:
                assert isinstance(o, Discovered)

    def step(self) -> None:
        """Deliver everything queued (and what it causes), then advance time one tick."""
        budget = 100_000
        while self.queue and budget:
            budget -= 1
            src, dst, frame = self.queue.popleft()
            if frozenset((src, dst)) not in self.links:
                continue
            dec = FrameDecoder()
            dec.receive_data(frame)
            msg = next(iter(dec))
            self.log.append((src, dst, msg))
            self._apply(dst, self.cores[dst].handle(self.now_ms, src, msg))
        self.now_ms += TICK_MS
        for name, core in self.cores.items():
            if name not in self.down:
                self._apply(name, core.tick(self.now_ms))

    def run_until(self, pred, max_ms: int = 60_000) -> None:
        end = self.now_ms + max_ms
        while not pred():
            assert self.now_ms < end, "simulation did not converge"
            self.step()

    def produce(self, name: str, n: int, txs_per_block: int = 2) -> None:
        """``name`` (an orderer's peer) stores n new blocks and publishes each."""
        rng = random.Random(self.orderer.height)
        for _ in range(n):
            txs = [make_tx(CH, CREATOR, [], rng, writes=[("k", rng.randbytes(20))]) for _ in range(txs_per_block)]
            block = self.orderer.block(txs)
            data = block.encode()
            store = self.stores[name]
            vb = verify_block(
                data,
                channel=CH,
                number=store.height,
                previous_hash=store.tip_hash or b"\x00" * 32,
                resolve_key=lambda c, cert: self.orderer.resolver(cert),
            )
            store.deliver([vb])
            self._apply(name, self.cores[name].publish_block(CH, vb.number, data))

    def tips(self) -> set[bytes | None]:
        return {s.tip_hash for n, s in self.stores.items()}


CREATOR = Signer.generate(random.Random(7))
PKI = Pki.create(["council", "transport", "health"])


def make_net(n: int, orgs: Sequence[str] = ("council", "transport", "health")) -> SimNet:
    net = SimNet(PKI, PKI.msp(), ChainBuilder(CH, Signer.generate(random.Random(1), label=b"orderer")))
    for i in range(n):
        net.add(f"n{i}", orgs[i % len(orgs)], seed=i)
    return net


def test_push_reaches_every_peer() -> None:
    net = make_net(6)
    # a sparse topology: a ring plus a chord, so blocks must be relayed
    names = sorted(net.cores)
    for i, a in enumerate(names):
        net.connect(a, names[(i + 1) % len(names)])
    net.connect("n0", "n3")
    for _ in range(10):
        net.produce("n0", 1)
        net.step()
    net.run_until(lambda: all(s.height == 10 for s in net.stores.values()))
    assert len(net.tips()) == 1 and not net.penalties
    pushes = sum(1 for _, _, m in net.log if isinstance(m, BlockPush))
    assert pushes >= 10 * 5  # every other node got each block by push (relays included)


def test_lost_pushes_are_healed_by_pull_anti_entropy() -> None:
    net = make_net(5)
    net.drop_pushes = 0.6
    net.connect_all()
    for _ in range(30):
        net.produce("n0", 1)
        net.step()
    net.run_until(lambda: all(s.height == 30 for s in net.stores.values()))
    assert net.lost > 30 and len(net.tips()) == 1 and not net.penalties
    assert any(isinstance(m, BlockBatch) and m.blocks for _, _, m in net.log)  # pulls did the healing


def test_lagging_peer_catches_up_by_state_transfer_from_several_peers() -> None:
    net = make_net(5)
    net.connect_all()
    net.produce("n0", 5)
    net.run_until(lambda: all(s.height == 5 for s in net.stores.values()))
    net.stop("n4")
    for _ in range(20):
        net.produce("n0", 10)
        net.step()
    net.run_until(lambda: all(net.stores[n].height == 205 for n in ("n0", "n1", "n2", "n3")))
    assert net.stores["n4"].height == 5
    net.log.clear()
    net.start("n4")
    for other in ("n0", "n1", "n2", "n3"):
        net.connect("n4", other)
    net.run_until(lambda: net.stores["n4"].height == 205)
    assert len(net.tips()) == 1 and not net.penalties
    served_by = {dst for src, dst, m in net.log if src == "n4" and isinstance(m, BlockRequest)}
    assert len(served_by) >= 2, served_by  # the range was pulled from several peers
    batches = [m for _, dst, m in net.log if dst == "n4" and isinstance(m, BlockBatch)]
    assert all(len(b.blocks) <= CFG.state_batch_blocks for b in batches)


def test_a_node_outside_the_channel_gets_none_of_its_blocks_until_admitted() -> None:
    net = make_net(4)
    net.members = {"n0", "n1", "n2"}  # n3 claims the channel in its hello but is not in its config
    net.connect_all()
    for _ in range(10):
        net.produce("n0", 1)
        net.step()
    net.run_until(lambda: all(net.stores[n].height == 10 for n in ("n0", "n1", "n2")))
    for _ in range(40):  # anti-entropy rounds: n3's height announcements and requests go unanswered
        net.step()
    assert net.stores["n3"].height == 0
    to_outsider = [m for _, dst, m in net.log if dst == "n3" and isinstance(m, (BlockPush, BlockBatch))]
    assert to_outsider == [] and not net.penalties
    net.members.add("n3")  # a configuration block admits it
    net.run_until(lambda: net.stores["n3"].height == 10)
    assert len(net.tips()) == 1


def _tamper(kind: str, block: Block, prev_builder: ChainBuilder) -> bytes:
    if kind == "signature":
        sig = get_backend().sign(Signer.generate(random.Random(3)).key, block.hash())
        return replace(block, signature=sig).encode()
    if kind == "merkle":
        txs = block.transactions[:-1]
        return replace(block, transactions=txs).encode()
    assert kind == "link"
    header = replace(block.header, previous_hash=b"\x11" * 32)
    sig = get_backend().sign(prev_builder.orderer.key, header.hash())
    return replace(block, header=header, signature=sig).encode()


@pytest.mark.parametrize("kind", ["signature", "merkle", "link"])
def test_invalid_pushed_block_is_rejected_and_sender_penalised(kind: str) -> None:
    net = make_net(3)
    net.connect_all()
    net.produce("n0", 3)
    net.run_until(lambda: all(s.height == 3 for s in net.stores.values()))
    # n2 turns malicious: it forges block 3 and pushes it to n1
    rng = random.Random(5)
    block = net.orderer.block([make_tx(CH, CREATOR, [], rng, writes=[("k", b"v")]) for _ in range(2)])
    bad = _tamper(kind, block, net.orderer)
    net.queue.append(("n2", "n1", encode_frame(BlockPush(CH, 3, bad))))
    net.step()
    assert ("n1", "n2") in [(a, b) for a, b, _ in net.penalties]
    assert net.stores["n1"].height == 3
    assert frozenset(("n1", "n2")) not in net.links


@pytest.mark.parametrize("kind", ["signature", "merkle", "link"])
def test_invalid_state_transfer_batch_penalised_and_catch_up_completes(kind: str) -> None:
    net = make_net(4)
    net.connect("n0", "n1")
    net.connect("n0", "n2")
    net.connect("n1", "n2")
    net.produce("n0", 40)
    net.run_until(lambda: all(net.stores[n].height == 40 for n in ("n0", "n1", "n2")))
    # n2's store is corrupted/forged at block 20 (it will serve the bad bytes)
    good = Block.decode(net.stores["n2"].blocks[20])
    net.stores["n2"].blocks[20] = _tamper(kind, good, net.orderer)
    # n3 joins knowing only n2: it must pull from n2, and gets the bad block
    net.connect("n3", "n2")
    net.run_until(lambda: net.penalties)
    assert [(a, b) for a, b, _ in net.penalties] == [("n3", "n2")]
    assert net.stores["n3"].height <= 20  # nothing at or after the bad block was delivered
    assert frozenset(("n3", "n2")) not in net.links
    # with honest peers it completes the catch-up
    net.connect("n3", "n0")
    net.connect("n3", "n1")
    net.run_until(lambda: net.stores["n3"].height == 40)
    assert net.stores["n3"].tip_hash == net.stores["n0"].tip_hash
    assert len(net.penalties) == 1


def test_private_blobs_reach_only_authorised_orgs() -> None:
    net = make_net(6)  # n0,n3 council; n1,n4 transport; n2,n5 health
    net.collections["permits"] = frozenset({"council", "transport"})
    net.connect_all()
    net.stop("n4")  # a transport node is offline during the push
    blobs = [f"scan-{i}".encode() * 10 for i in range(6)]
    digests = []
    for b in blobs:
        d, outs = net.cores["n0"].disseminate_private("permits", b)
        net._apply("n0", outs)
        digests.append(d)
    assert digests[0] == blob_digest(blobs[0])
    net.step()
    net.start("n4")
    for other in ("n0", "n1", "n2", "n3", "n5"):
        net.connect("n4", other)
    authorised = ("n0", "n1", "n3", "n4")
    net.run_until(lambda: all(all(net.private[n].has(d) for d in digests) for n in authorised))
    for n in ("n2", "n5"):
        assert not net.private[n].blobs
        assert not any(dst == n and isinstance(m, PvtPush) for _, dst, m in net.log)
    assert not net.penalties


def test_membership_alive_expiry_and_purge() -> None:
    net = make_net(4)
    names = sorted(net.cores)
    for i in range(3):
        net.connect(names[i], names[i + 1])  # a line: n0 - n1 - n2 - n3
    net.run_until(lambda: net.cores["n0"].membership.alive_members() == ["n1", "n2", "n3"])
    net.stop("n3")
    net.run_until(lambda: "n3" in net.cores["n0"].membership.dead_members(), max_ms=CFG.alive_expiry_ms * 3)
    assert "n3" not in net.cores["n0"].membership.alive_members()
    net.run_until(lambda: "n3" not in net.cores["n0"].membership.members, max_ms=CFG.dead_purge_ms * 2)
    assert not net.penalties


def test_restarted_member_with_a_new_incarnation_supersedes_its_old_statements() -> None:
    net = make_net(2)
    net.connect_all()
    m1 = net.cores["n1"].membership
    for _ in range(5):
        old = m1.make_alive()
    net.queue.append(("n1", "n0", encode_frame(old)))
    net.step()
    view = net.cores["n0"].membership.members["n1"].alive
    assert (view.incarnation, view.seq) >= (1, 5)
    m1._self = replace(m1._self, incarnation=2, seq=0, address="n1:2")  # as after a restart
    fresh = m1.make_alive()
    assert fresh.seq == 1
    for msg in (fresh, old):  # the new incarnation, then a replay of the old one
        net.queue.append(("n1", "n0", encode_frame(msg)))
    net.step()
    view = net.cores["n0"].membership.members["n1"].alive
    assert (view.incarnation, view.address) == (2, "n1:2")
    assert not net.penalties


def test_forged_alive_penalises_the_relayer() -> None:
    net = make_net(3)
    net.connect_all()
    genuine = net.cores["n2"].membership.make_alive()
    forged = replace(genuine, address="evil:1", seq=genuine.seq + 5)  # signature no longer matches
    net.queue.append(("n1", "n0", encode_frame(forged)))
    net.step()
    assert ("n0", "n1") in [(a, b) for a, b, _ in net.penalties]
    other = net.pki.node("transport", "impostor")
    stolen = Alive("n2", "health", "x:1", (CH,), 9, 9, other.identity.cert_der, b"")
    net.queue.append(("n2", "n0", encode_frame(stolen)))
    net.step()
    assert ("n0", "n2") in [(a, b) for a, b, _ in net.penalties]


def test_planner_refills_a_gap_even_when_parked_batches_are_at_their_limit() -> None:
    builder = ChainBuilder(CH, Signer.generate(random.Random(1), label=b"orderer"))
    rng = random.Random(4)
    datas = [builder.block([make_tx(CH, CREATOR, [], rng)]).encode() for _ in range(2 + 2 * READY_BATCHES_MAX)]
    st = StateTransfer(CH, replace(CFG, state_batch_blocks=2), random.Random(0), lambda c, o: builder.resolver(o))
    heights = {"a": len(datas), "b": len(datas)}
    first = st.plan(0, 0, heights)
    assert [o.msg.start for o in first if isinstance(o, Send) and isinstance(o.msg, BlockRequest)] == [0, 2, 4]
    # the request for blocks 0-1 is lost; every later batch arrives and is parked
    for rid in list(st.outstanding):
        q = st.outstanding[rid]
        if q.start != 0:
            st.on_batch(q.peer, BlockBatch(CH, rid, q.start, tuple(datas[q.start : q.start + 2])), 0)
    now = 0
    while len(st.ready) < READY_BATCHES_MAX:
        for o in st.plan(now, 0, heights):
            assert isinstance(o, Send) and isinstance(o.msg, BlockRequest)
            if o.msg.start != 0:
                m = o.msg
                st.on_batch(o.peer, BlockBatch(CH, m.request_id, m.start, tuple(datas[m.start : m.start + 2])), 0)
        now += 10
    assert len(st.ready) == READY_BATCHES_MAX
    # after the lost request times out, the gap is asked for again despite the full park
    later = st.plan(now + CFG.state_request_timeout_ms + 1, 0, heights)
    gap = [o.msg for o in later if isinstance(o, Send) and isinstance(o.msg, BlockRequest)]
    assert [(m.start, m.count) for m in gap] == [(0, 2)]
    st.on_batch(
        next(o.peer for o in later if isinstance(o, Send)), BlockBatch(CH, gap[0].request_id, 0, tuple(datas[:2])), 0
    )
    taken = st.take_ready(0)
    assert taken is not None and [b.number for b in taken[1]] == [0, 1]
    assert verify_chain_segment(
        datas, channel=CH, start=0, previous_hash=None, resolve_key=lambda c, o: builder.resolver(o)
    )
