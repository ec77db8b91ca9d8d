"""The block validator: one test per validation code, block rejections, genesis, the signature cache."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from pipeline_kit import BLOCK_MS0, CHANNEL, NOW, Chain, Pki, channel_config

from crypto.batch import BatchVerifier
from crypto.signing import PublicKey, get_backend
from secprivnode.genesis import genesis_block
from secprivnode.pipeline.errors import AlreadyCommitted, BlockRejected, GenesisError, ProposalRejected, RejectCode
from secprivnode.pipeline.validator import BlockValidator
from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import (
    Block,
    ChannelConfig,
    Endorsement,
    KVRead,
    KVWrite,
    ReadWriteSet,
    Response,
    Transaction,
    ValidationCode,
    endorsement_digest,
)

V = ValidationCode
C1, T1, H1 = "council/council-node1", "transport/transport-node1", "health/health-node1"


def put(chain: Chain, key: str, value: bytes = b"v", who: str = "council/alice") -> Transaction:
    return chain.tx(who, "put", key, value)


def test_valid_block(chain: Chain) -> None:
    assert chain.codes([put(chain, "a"), put(chain, "b", who="health/alice")]) == [V.VALID, V.VALID]
    assert chain.ledger.get_state("assets", "kv/b") == (b"v", (1, 1))


def test_forged_creator_signature(chain: Chain) -> None:
    tx = put(chain, "a")
    forged = get_backend().sign(chain.pki["council/mallory"].key, tx.proposal.hash())
    assert chain.codes([dataclasses.replace(tx, signature=forged)]) == [V.BAD_CREATOR_SIGNATURE]
    # a creator swapped for another member's certificate: same signature no longer matches
    header = dataclasses.replace(tx.proposal.header, creator=chain.pki["transport/alice"].cert)
    swapped = dataclasses.replace(tx, proposal=dataclasses.replace(tx.proposal, header=header))
    assert chain.codes([swapped]) == [V.BAD_CREATOR_SIGNATURE]


def test_forged_endorsements(chain: Chain) -> None:
    # the rwset changed after endorsement: signatures no longer cover it
    tx = put(chain, "a")
    tampered = dataclasses.replace(tx, rwset=dataclasses.replace(tx.rwset, writes=(KVWrite("kv/a", b"evil"),)))
    # an endorsement claiming a node's certificate, signed with another key
    tx = put(chain, "b")
    msg = endorsement_digest(tx.proposal.hash(), tx.response, tx.rwset)
    fake = Endorsement(chain.pki[H1].cert, get_backend().sign(chain.pki["health/alice"].key, msg))
    forged = dataclasses.replace(tx, endorsements=(tx.endorsements[0], fake))
    tx = put(chain, "c")
    garbage = dataclasses.replace(tx, endorsements=(tx.endorsements[0], Endorsement(b"not a cert", b"sig")))
    codes = chain.codes([tampered, forged, garbage])
    assert codes == [V.BAD_ENDORSEMENT_SIGNATURE] * 3


def _endorse_as(chain: Chain, tx: Transaction, who: Sequence[str]) -> Transaction:
    msg = endorsement_digest(tx.proposal.hash(), tx.response, tx.rwset)
    ends = tuple(Endorsement(chain.pki[w].cert, get_backend().sign(chain.pki[w].key, msg)) for w in who)
    return dataclasses.replace(tx, endorsements=ends)


def test_endorsement_policy(chain: Chain) -> None:
    one = chain.tx("council/alice", "put", "k1", b"v", nodes=[C1])
    same_org = chain.tx("council/alice", "put", "k2", b"v", nodes=[C1, "council/council-node2"])
    twice = chain.tx("council/alice", "put", "k3", b"v", nodes=[C1, C1])  # one signer counted once
    clients = _endorse_as(chain, put(chain, "k4"), [C1, "transport/alice"])  # a client is not a node
    admins = _endorse_as(chain, put(chain, "k5"), ["health/admin", "transport/admin"])
    outsider = _endorse_as(chain, put(chain, "k6"), [C1, "outsider/eve"])
    good = chain.tx("council/alice", "put", "k7", b"v", nodes=[T1, H1])
    codes = chain.codes([one, same_org, twice, clients, admins, outsider, good])
    assert codes == [V.ENDORSEMENT_POLICY_FAILURE] * 6 + [V.VALID]


def test_unknown_contract_and_bad_payload(chain: Chain) -> None:
    tx = put(chain, "a")
    # a proposal to a contract the channel does not define, with a matching namespace
    p = dataclasses.replace(tx.proposal, contract="parking")
    sig = get_backend().sign(chain.pki["council/alice"].key, p.hash())
    rw = dataclasses.replace(tx.rwset, namespace="parking")
    unknown = _endorse_as(chain, Transaction(p, sig, tx.response, rw, ()), [C1, T1])
    assert chain.codes([unknown]) == [V.UNKNOWN_CONTRACT]

    def altered(**changes: object) -> Transaction:
        t = put(chain, "b")
        return _endorse_as(chain, dataclasses.replace(t, **changes), [C1, T1])  # type: ignore[arg-type]

    wrong_ns = altered(rwset=ReadWriteSet("other", (), (KVWrite("kv/b", b"v"),)))
    error = altered(response=Response(500, "boom"))
    bad_key = altered(rwset=ReadWriteSet("assets", (), (KVWrite("", b"x"),)))
    nul_key = altered(rwset=ReadWriteSet("assets", (KVRead("a\x00", None),)))
    assert chain.codes([wrong_ns, error, bad_key, nul_key]) == [V.BAD_PAYLOAD] * 4


def test_wrong_channel_and_unknown_creator(chain: Chain) -> None:
    p, sig = chain.propose("council/alice", "assets", "put", "k", b"v", channel="other")
    tx = Transaction(p, sig, Response(200), chain.tx("council/alice", "put", "k", b"v").rwset, ())
    p2, sig2 = chain.propose("outsider/eve", "assets", "put", "k", b"v")
    eve = _endorse_as(chain, Transaction(p2, sig2, Response(200), tx.rwset, ()), [C1, T1])
    header = dataclasses.replace(p2.header, creator=b"garbage")
    junk = dataclasses.replace(eve, proposal=dataclasses.replace(p2, header=header))
    assert chain.codes([tx, eve, junk]) == [V.BAD_CHANNEL, V.UNKNOWN_IDENTITY, V.UNKNOWN_IDENTITY]


def test_duplicate_tx_ids(chain: Chain) -> None:
    tx = put(chain, "a")
    assert chain.codes([tx, tx]) == [V.VALID, V.DUPLICATE_TXID]  # within a block
    assert chain.codes([tx]) == [V.DUPLICATE_TXID]  # against the ledger
    # an invalid copy (the signed proposal with forged or missing endorsements) does not take
    # the id: the genuine transaction after it, in the same block or a later one, is VALID
    t2 = put(chain, "b")
    bad = dataclasses.replace(t2, endorsements=t2.endorsements[:1])
    assert chain.codes([bad, t2]) == [V.ENDORSEMENT_POLICY_FAILURE, V.VALID]
    t3 = put(chain, "c")
    assert chain.codes([dataclasses.replace(t3, endorsements=t3.endorsements[:1])]) == [V.ENDORSEMENT_POLICY_FAILURE]
    assert chain.codes([t3, t3]) == [V.VALID, V.DUPLICATE_TXID]


def test_mvcc_conflict_across_blocks(chain: Chain) -> None:
    assert chain.codes([chain.tx("council/alice", "create", "car", "council")]) == [V.VALID]
    first = chain.tx("council/alice", "transfer", "car", "bob")
    second = chain.tx("council/alice", "transfer", "car", "carol")  # endorsed on the same state
    assert chain.codes([first]) == [V.VALID]
    assert chain.codes([second]) == [V.MVCC_READ_CONFLICT]


def test_mvcc_conflict_within_a_block(chain: Chain) -> None:
    assert chain.codes([chain.tx("council/alice", "create", "car", "council")]) == [V.VALID]
    first = chain.tx("council/alice", "transfer", "car", "council")
    second = chain.tx("council/alice", "transfer", "car", "carol")
    blind = put(chain, "x")
    blind2 = put(chain, "x", b"w")  # blind writes never conflict: the last one wins
    assert chain.codes([first, second, blind, blind2]) == [V.VALID, V.MVCC_READ_CONFLICT, V.VALID, V.VALID]
    assert chain.ledger.get_state("assets", "kv/x") == (b"w", (chain.ledger.height - 1, 3))
    # an invalid tx's writes do not count as conflicts for later txs of the block
    t_bad = chain.tx("council/alice", "update", "car", 1)
    t_bad = dataclasses.replace(t_bad, endorsements=t_bad.endorsements[:1])
    t_ok = chain.tx("council/alice", "update", "car", 2)
    assert chain.codes([t_bad, t_ok]) == [V.ENDORSEMENT_POLICY_FAILURE, V.VALID]


def test_phantom_reads(chain: Chain) -> None:
    assert chain.codes([chain.tx("council/alice", "create", "a", "council")]) == [V.VALID]
    scan = chain.tx("council/alice", "list")
    assert scan.rwset.range_reads and not scan.rwset.reads
    insert = chain.tx("council/alice", "create", "b", "council")
    assert chain.codes([insert]) == [V.VALID]
    assert chain.codes([scan]) == [V.PHANTOM_READ_CONFLICT]  # a key appeared in the range
    scan2 = chain.tx("council/alice", "list")
    delete = chain.tx("council/alice", "delete", "a")
    assert chain.codes([delete, scan2]) == [V.VALID, V.PHANTOM_READ_CONFLICT]  # within the block
    scan3 = chain.tx("council/alice", "list")
    unrelated = put(chain, "zzz")
    assert chain.codes([unrelated, scan3]) == [V.VALID, V.VALID]


def test_revoked_creator(chain: Chain) -> None:
    before = chain.tx("council/mallory", "put", "k", b"v")  # endorsed while mallory was a member
    chain.revoke("council/mallory")
    assert chain.codes([before]) == [V.REVOKED_IDENTITY]
    p, sig = chain.propose("council/mallory", "assets", "put", "k", b"v")
    with pytest.raises(ProposalRejected) as info:
        chain.endorsers[C1].endorse(p, sig)  # the endorser's MSP follows the committed config
    assert info.value.code is RejectCode.REVOKED_IDENTITY and "revoked" in info.value.message


def test_expiry_is_judged_at_block_time(chain: Chain) -> None:
    tx = put(chain, "k")
    late = (NOW + 900 * 86400) * 1000  # past the certificates' 825 days, by the block's clock
    with pytest.raises(BlockRejected, match="orderer is not a member"):
        chain.commit([tx], ms=late)  # the orderer's certificate has expired as well
    validator = BlockValidator(chain.ledger, chain.verifier, check_orderer=False)
    assert validator.validate(chain.block([tx], ms=late)) == [V.UNKNOWN_IDENTITY]
    assert validator.validate(chain.block([tx])) == [V.VALID]


def test_config_updates(chain: Chain) -> None:
    nxt = channel_config(chain.pki, 1, admin_policy="AND('council.admin', 'health.admin')")
    one_admin = chain.config_tx(nxt, ["council/admin"])
    client = chain.config_tx(nxt, ["council/admin", "health/alice"])  # a client is not an admin
    wrong_seq = chain.config_tx(channel_config(chain.pki, 2), ["council/admin", "health/admin"])
    no_orderer = channel_config(chain.pki, 1, nodes=())
    malformed = chain.config_tx(no_orderer, ["council/admin", "health/admin"])
    assert chain.codes([one_admin, client, wrong_seq, malformed]) == [V.INVALID_CONFIG] * 4
    assert chain.ledger.latest_config().sequence == 0  # type: ignore[union-attr]

    attempt = chain.config_tx(nxt, ["council/admin", "health/admin"])
    approval = attempt.endorsements[0]
    forged = dataclasses.replace(
        attempt, endorsements=(approval, Endorsement(chain.pki["health/admin"].cert, approval.signature))
    )
    assert chain.codes([forged]) == [V.BAD_ENDORSEMENT_SIGNATURE]
    good = chain.config_tx(nxt, ["council/admin", "health/admin"])
    result = chain.commit([good])
    assert result.codes == (V.VALID,)
    assert result.config == nxt and chain.ledger.latest_config() == nxt
    # the new admin policy now applies: council + transport no longer suffice
    seq2 = channel_config(chain.pki, 2)
    assert chain.codes([chain.config_tx(seq2, ["council/admin", "transport/admin"])]) == [V.INVALID_CONFIG]
    # an approval collected against an old config version conflicts (MVCC on the config key)
    stale = chain.config_tx(seq2, ["council/admin", "health/admin"], read_version=(0, 0))
    assert chain.codes([stale]) == [V.MVCC_READ_CONFLICT]
    assert chain.codes([chain.config_tx(seq2, ["council/admin", "health/admin"])]) == [V.VALID]


def test_config_in_the_middle_of_a_block_applies_to_later_txs(chain: Chain) -> None:
    # The update removes the assets contract: txs after it in the same block are UNKNOWN_CONTRACT.
    before = put(chain, "a")
    after = put(chain, "b")
    update = chain.config_tx(channel_config(chain.pki, 1, contracts=()), ["council/admin", "health/admin"])
    assert chain.codes([before, update, after]) == [V.VALID, V.VALID, V.UNKNOWN_CONTRACT]


def test_block_rejections(chain: Chain) -> None:
    tx = put(chain, "a")
    block = chain.block([tx])
    with pytest.raises(BlockRejected, match="orderer signature"):
        chain.committer.commit(dataclasses.replace(block, signature=block.signature[:-1] + b"\x00"))
    with pytest.raises(BlockRejected, match="not an orderer"):
        chain.commit([tx], orderer="transport/transport-node1")
    with pytest.raises(BlockRejected, match="not a member node"):
        chain.commit([tx], orderer="council/admin")
    with pytest.raises(BlockRejected, match="previous hash"):
        chain.committer.commit(
            dataclasses.replace(block, header=dataclasses.replace(block.header, previous_hash=b"\x01" * 32))
        )
    with pytest.raises(BlockRejected, match="does not extend"):
        chain.committer.commit(dataclasses.replace(block, header=dataclasses.replace(block.header, number=5)))
    chain.committer.commit(block)
    with pytest.raises(AlreadyCommitted):
        chain.committer.commit(block)
    assert chain.ledger.height == 2


def test_genesis_checks(pki: Pki, tmp_path: object, chain: Chain) -> None:
    db = Database(chain.db.path.parent / "fresh")
    try:
        ledger = ChannelLedger(db, CHANNEL)
        v = BlockValidator(ledger, chain.verifier)
        admin = pki["council/admin"]

        def gen(cfg: ChannelConfig) -> Block:
            return genesis_block(cfg, admin_cert_der=admin.cert, admin_key=admin.key, timestamp_ms=BLOCK_MS0)

        good = gen(channel_config(pki))
        assert v.validate(good) == [V.VALID]
        with pytest.raises(GenesisError, match="channel 'other'"):
            v.validate(gen(channel_config(pki, channel="other")))
        with pytest.raises(GenesisError, match="at least one orderer"):
            v.validate(gen(channel_config(pki, nodes=())))
        two = dataclasses.replace(good, transactions=good.transactions * 2)
        with pytest.raises(GenesisError, match="exactly one"):
            v.validate(two)
    finally:
        db.close()


def test_signatures_are_verified_in_one_batch_and_cached(chain: Chain) -> None:
    calls: list[int] = []

    class Counting:
        def __init__(self) -> None:
            self.inner = BatchVerifier(workers=1, inline_max=1 << 20)

        def verify_many(self, items: Sequence[tuple[PublicKey, bytes, bytes]]) -> list[bool]:
            calls.append(len(items))
            return self.inner.verify_many(items)

    txs = [put(chain, f"k{i}", who="transport/alice") for i in range(5)]
    validator = BlockValidator(chain.ledger, Counting())  # fresh cache: nothing seen yet
    block = chain.block(txs)
    assert validator.validate(block) == [V.VALID] * 5
    assert calls == [5 * 3 + 1]  # 5 creators + 10 endorsements + the orderer, in one call
    assert validator.validate(block) == [V.VALID] * 5
    assert calls == [16]  # everything was cached
    # the chain's shared cache already knew every endorsement its endorsers produced
    hits = chain.sigcache.hits
    chain.committer.commit(block)
    assert chain.sigcache.hits - hits >= 15


def test_encoded_round_trip_validates_the_same(chain: Chain) -> None:
    txs = [chain.tx("council/alice", "create", "car", "alice", {"doors": 4}), put(chain, "x")]
    block = chain.block(txs)
    decoded = type(block).decode(block.encode())
    assert chain.validator.validate(decoded) == [V.VALID, V.VALID]
    result = chain.committer.commit(decoded, block_bytes=block.encode())
    assert result.codes == (V.VALID, V.VALID)
