"""Private collections end to end on real ledgers: endorsement keeps hashes on the ledger and the
plaintext off it, commit moves it to the private state of member nodes only, block-to-live purges
it, gaps are recorded and filled, and hashed reads take part in MVCC."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_kit import Chain, Pki, channel_config

from crypto.encoding import encode
from crypto.msp import MSP
from secprivnode.contracts.config_contract import ConfigError, check_config
from secprivnode.contracts.runtime import Contract, transaction
from secprivnode.contracts.stub import Stub
from secprivnode.pipeline.endorser import EndorsementResult
from secprivnode.pipeline.errors import ContractRejected
from secprivnode.pipeline.privdata import ChannelPrivateData
from secprivnode.pipeline.validator import _BlockState
from storage.model import (
    ChannelConfig,
    CollectionConfig,
    ContractDefinition,
    Proposal,
    ReadWriteSet,
    Transaction,
    ValidationCode,
)
from storage.privstate import key_hash, value_hash

V = ValidationCode
SECRET = b"plate SC-1 belongs to citizen 4711"
PAIR = CollectionConfig("assets", "pair", ("council", "transport"), 0, 1, 3)
ANY = ContractDefinition("assets", "1.0", "ANY(node)")
COUNCIL = "council/council-node1"


def _config(pki: Pki) -> ChannelConfig:
    return channel_config(pki, contracts=(ANY,), collections=(PAIR,))


class Node:
    """One node's view: its own ledger, private data for its org, its endorser."""

    def __init__(self, pki: Pki, path: Path, org: str, like: Node | None = None) -> None:
        genesis = None if like is None else like.chain.genesis
        self.chain: Chain = Chain(pki, path, _config(pki), genesis=genesis)
        self.private = ChannelPrivateData(self.chain.ledger, org)
        self.chain.committer.private = self.private
        for e in self.chain.endorsers.values():
            e.private = self.private
        self.path = path

    def endorse_private(self, key: str, value: bytes = SECRET, node: str = COUNCIL) -> EndorsementResult:
        p, sig = self.chain.propose("council/alice", "assets", "put_private", "pair", key)
        p = Proposal(p.header, p.contract, p.function, p.args, {"value": value})
        return self.chain.endorsers[node].endorse(p, sig)


@pytest.fixture
def nodes(pki: Pki, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    member = Node(pki, tmp_path / "member", "council")
    outsider = Node(pki, tmp_path / "outsider", "health", member)
    yield member, outsider
    member.chain.close()
    outsider.chain.close()


def _private_tx(node: Node, key: str, value: bytes = SECRET) -> tuple[Transaction, EndorsementResult]:
    chain = node.chain
    p, sig = chain.propose("council/alice", "assets", "put_private", "pair", key)
    p = Proposal(p.header, p.contract, p.function, p.args, {"value": value})
    res = chain.endorsers[COUNCIL].endorse(p, sig)
    stored = Proposal(p.header, p.contract, p.function, p.args)
    return Transaction(stored, sig, res.response, res.rwset, (res.endorsement,)), res


def _commit_both(member: Node, outsider: Node, txs: list[Transaction]) -> tuple[ValidationCode, ...]:
    block = member.chain.block(txs)
    codes = member.chain.committer.commit(block).codes
    assert outsider.chain.committer.commit(block).codes == codes
    return codes


def _files_hold(root: Path, needle: bytes) -> bool:
    return any(needle in f.read_bytes() for f in root.rglob("*") if f.is_file())


def test_rwset_carries_hashes_and_plaintext_stays_off_chain(nodes: tuple[Node, Node]) -> None:
    member, outsider = nodes
    tx, res = _private_tx(member, "k1")
    assert [ws.writes for ws in res.private] == [(("k1", SECRET),)]
    (coll,) = tx.rwset.collections
    assert coll.collection == "pair" and coll.writes[0].key_hash == key_hash("k1")
    assert coll.writes[0].value_hash == value_hash(SECRET)
    assert SECRET not in tx.encode() and b"k1" not in encode(tx.rwset.to_obj())
    assert _commit_both(member, outsider, [tx]) == (V.VALID,)
    assert member.private.get_private("assets", "pair", "k1") == (SECRET, (1, 0))
    assert outsider.private.get_private("assets", "pair", "k1") is None
    for n in (member, outsider):  # every node keeps the hashes
        assert n.chain.ledger.get_hashed("assets", "pair", key_hash("k1")) == (value_hash(SECRET), (1, 0))
    member.chain.close()
    outsider.chain.close()
    assert _files_hold(member.path, SECRET)
    assert not _files_hold(outsider.path, SECRET)  # not a byte of it, LevelDB files included


def test_non_member_endorser_refuses(nodes: tuple[Node, Node]) -> None:
    _, outsider = nodes
    with pytest.raises(ContractRejected) as err:
        outsider.endorse_private("k1", node="health/health-node1")
    assert err.value.response.status == 403


def test_query_reads_private_state_on_members(nodes: tuple[Node, Node]) -> None:
    member, outsider = nodes
    tx, _ = _private_tx(member, "k1")
    _commit_both(member, outsider, [tx])
    p, sig = member.chain.propose("council/alice", "assets", "get_private", "pair", "k1")
    sim = member.chain.endorsers[COUNCIL].evaluate(p, sig)
    resp, rwset = sim.response, sim.rwset
    assert resp.payload == SECRET and rwset.collections[0].reads[0].version == (1, 0)


def test_block_to_live_purges_private_state_and_write_sets(nodes: tuple[Node, Node]) -> None:
    member, outsider = nodes
    tx, res = _private_tx(member, "k1")
    _commit_both(member, outsider, [tx])  # block 1; block-to-live 3: purged when block 4 commits
    state = member.private.state
    assert state.write_set(tx.tx_id, "assets", "pair") is not None
    for _ in range(2):
        _commit_both(member, outsider, [member.chain.tx("council/alice", "put", "pad", b"x", nodes=[COUNCIL])])
    assert member.private.get_private("assets", "pair", "k1") is not None
    _commit_both(member, outsider, [member.chain.tx("council/alice", "put", "pad", b"y", nodes=[COUNCIL])])
    assert member.private.get_private("assets", "pair", "k1") is None
    assert state.write_set(tx.tx_id, "assets", "pair") is None
    assert res.private


def test_missing_data_is_recorded_and_filled_later(pki: Pki, tmp_path: Path, nodes: tuple[Node, Node]) -> None:
    member, _ = nodes
    late = Node(pki, tmp_path / "late", "transport", member)  # a member that was down during dissemination
    try:
        tx, res = _private_tx(member, "k1")
        block = member.chain.block([tx])
        member.chain.committer.commit(block)
        assert late.chain.committer.commit(block).codes == (V.VALID,)
        assert late.private.get_private("assets", "pair", "k1") is None
        ((gap_key, b, i, ns, coll),) = late.private.gaps()
        assert (b, i, ns, coll) == (1, 0, "assets", "pair")
        assert not late.private.fill_gap(gap_key, b, i, ns, coll)  # not received yet
        with pytest.raises(ValueError):
            late.private.accept(res.private[0].encode(), "assets", "other")
        late.private.accept(res.private[0].encode(), "assets", "pair")  # pulled from the member
        assert late.private.fill_gap(gap_key, b, i, ns, coll)
        assert late.private.gaps() == []
        assert late.private.get_private("assets", "pair", "k1") == (SECRET, (1, 0))
    finally:
        late.chain.close()


def test_forged_private_data_is_not_applied(pki: Pki, tmp_path: Path, nodes: tuple[Node, Node]) -> None:
    member, _ = nodes
    late = Node(pki, tmp_path / "late", "transport", member)
    try:
        tx, res = _private_tx(member, "k1")
        late.private.accept(dataclasses.replace(res.private[0], writes=(("k1", b"forged"),)).encode(), "assets", "pair")
        late.chain.committer.commit(member.chain.block([tx]))
        assert late.private.get_private("assets", "pair", "k1") is None and len(late.private.gaps()) == 1
    finally:
        late.chain.close()


def test_hashed_reads_are_mvcc_checked(nodes: tuple[Node, Node]) -> None:
    member, outsider = nodes
    tx, _ = _private_tx(member, "k1")
    _commit_both(member, outsider, [tx])
    chain = member.chain
    p, sig = chain.propose("council/alice", "assets", "get_private", "pair", "k1")
    reader_rw = chain.endorsers[COUNCIL].evaluate(p, sig)[1]
    assert reader_rw.collections[0].reads[0].version == (1, 0)
    for n in (member, outsider):  # hashed reads check on members and non-members alike
        assert n.chain.validator._mvcc(reader_rw, _state(n)) is V.VALID
    rewrite, _ = _private_tx(member, "k1", b"v2")
    assert _commit_both(member, outsider, [rewrite]) == (V.VALID,)
    for n in (member, outsider):
        assert n.chain.validator._mvcc(reader_rw, _state(n)) is V.MVCC_READ_CONFLICT
    # and within one block: a write by an earlier VALID tx conflicts with a later hashed read
    again, _ = _private_tx(member, "k1", b"v3")
    st = _state(member)
    member.chain.validator._record_writes(again.rwset, st)
    fresh = chain.endorsers[COUNCIL].evaluate(*chain.propose("council/alice", "assets", "get_private", "pair", "k1"))[1]
    assert member.chain.validator._mvcc(fresh, st) is V.MVCC_READ_CONFLICT


def _state(node: Node) -> _BlockState:
    cfg = node.chain.ledger.latest_config()
    assert cfg is not None
    return _BlockState(cfg, MSP(()), 0)


def test_unknown_collection_in_rwset_is_bad_payload(nodes: tuple[Node, Node]) -> None:
    member, _ = nodes
    tx, _ = _private_tx(member, "k1")
    coll = dataclasses.replace(tx.rwset.collections[0], collection="ghost")
    assert (
        member.chain.validator._mvcc(dataclasses.replace(tx.rwset, collections=(coll,)), _state(member))
        is V.BAD_PAYLOAD
    )


def test_encoding_is_unchanged_without_collections(pki: Pki) -> None:
    cfg = channel_config(pki)
    assert len(cfg.to_obj()) == 7 and ChannelConfig.from_obj(cfg.to_obj()) == cfg
    withc = _config(pki)
    assert len(withc.to_obj()) == 8 and ChannelConfig.from_obj(withc.to_obj()) == withc
    rw = ReadWriteSet("assets")
    assert len(rw.to_obj()) == 4 and ReadWriteSet.from_obj(rw.to_obj()) == rw


@pytest.mark.parametrize(
    ("coll", "message"),
    [
        (CollectionConfig("ghost", "c", ("council",)), "undefined contract"),
        (CollectionConfig("assets", "c", ("nobody",)), "unknown organisations"),
        (CollectionConfig("assets", "c", ()), "at least one member"),
        (CollectionConfig("assets", "c/d", ("council",)), "without '/'"),
        (CollectionConfig("assets", "c", ("council",), 2, 2), "exceeds"),
        (CollectionConfig("assets", "c", ("council", "health"), 2, 1), "below required_peers"),
    ],
)
def test_check_config_refuses_bad_collections(pki: Pki, coll: CollectionConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_config(channel_config(pki, collections=(coll,)))


def test_duplicate_collection_refused(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="twice"):
        check_config(channel_config(pki, collections=(PAIR, PAIR)))


def test_gossip_inventory_lists_a_collections_write_sets(nodes: tuple[Node, Node]) -> None:
    member, _ = nodes
    digests = sorted(member.private.keep([_private_tx(member, f"k{i}")[1].private[0] for i in range(3)]))
    state = member.private.state
    assert state.digests("assets", "pair", b"", 10) == digests
    assert state.digests("assets", "pair", digests[0], 10) == digests[1:]
    assert state.digests("assets", "pair", b"", 2) == digests[:2]
    assert state.digests("assets", "other", b"", 10) == []


def test_write_set_of_an_applied_transaction_is_not_kept_again(nodes: tuple[Node, Node]) -> None:
    member, outsider = nodes
    tx, res = _private_tx(member, "k1")
    _commit_both(member, outsider, [tx])
    for _ in range(PAIR.block_to_live):  # purge it
        _commit_both(member, outsider, [member.chain.tx("council/alice", "put", "pad", b"x", nodes=[COUNCIL])])
    state = member.private.state
    assert state.write_set(tx.tx_id, "assets", "pair") is None
    member.private.accept(res.private[0].encode(), "assets", "pair")  # a peer re-sends it
    assert state.write_set(tx.tx_id, "assets", "pair") is None


class Clerk(Contract):
    """Calls assets.put_private: the private write lands in the assets namespace's read/write set."""

    name = "clerk"

    @transaction
    def file(self, stub: Stub, key: str) -> None:
        stub.put_state("filed/" + key, b"1")
        stub.invoke_contract("assets", "put_private", "pair", key)


def test_private_writes_of_a_called_contract_ride_on_its_namespace(pki: Pki, tmp_path: Path) -> None:
    cfg = channel_config(pki, contracts=(ANY, ContractDefinition("clerk", "1.0", "ANY(node)")), collections=(PAIR,))
    chain = Chain(pki, tmp_path / "calls", cfg, contracts=[Clerk()])
    try:
        private = ChannelPrivateData(chain.ledger, "council")
        chain.committer.private = private
        for e in chain.endorsers.values():
            e.private = private
        p, sig = chain.propose("council/alice", "clerk", "file", "k9")
        p = Proposal(p.header, p.contract, p.function, p.args, {"value": SECRET})
        res = chain.endorsers[COUNCIL].endorse(p, sig)
        assert res.rwset.namespace == "clerk" and not res.rwset.collections
        (assets_rw,) = res.extra_rwsets
        assert assets_rw.namespace == "assets" and assets_rw.collections[0].collection == "pair"
        assert [(w.namespace, w.collection) for w in res.private] == [("assets", "pair")]
        stored = Proposal(p.header, p.contract, p.function, p.args)
        tx = Transaction(stored, sig, res.response, res.rwset, (res.endorsement,), res.extra_rwsets)
        assert chain.codes([tx]) == [V.VALID]
        assert private.get_private("assets", "pair", "k9") == (SECRET, (1, 0))
        assert chain.ledger.get_state("clerk", "filed/k9") is not None
    finally:
        chain.close()


def test_a_damaged_write_set_counts_as_missing(nodes: tuple[Node, Node]) -> None:
    member, outsider = nodes
    tx, res = _private_tx(member, "k1")
    state = member.private.state
    d = hashlib.sha256(res.private[0].encode()).digest()
    raw = member.chain.db.raw
    (key,) = [k for k in raw.iterator(include_value=False) if k.endswith(d) and k[len(k) - 33 : len(k) - 32] == b"x"]
    raw.put(key, b"\xc1 not a write set")
    assert _commit_both(member, outsider, [tx]) == (V.VALID,)  # the chain goes on
    assert member.private.get_private("assets", "pair", "k1") is None and len(member.private.gaps()) == 1
    assert state.get_blob(d) is not None
