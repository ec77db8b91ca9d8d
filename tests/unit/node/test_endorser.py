"""The endorser: every rejection path, and what a good endorsement contains."""

from __future__ import annotations

import dataclasses

import pytest
from pipeline_kit import CHANNEL, NOW, Chain, channel_config

from crypto.encoding import decode
from crypto.signing import get_backend
from secprivnode.contracts.runtime import ContractRegistry
from secprivnode.pipeline.endorser import Endorser
from secprivnode.pipeline.errors import ContractRejected, ProposalRejected, RejectCode
from storage.model import ContractDefinition, KVRead, KVWrite, ReadWriteSet, endorsement_digest

NODE = "council/council-node1"


def reject(chain: Chain, p: object, sig: bytes, node: str = NODE) -> ProposalRejected:
    with pytest.raises(ProposalRejected) as info:
        chain.endorsers[node].endorse(p, sig)  # type: ignore[arg-type]
    return info.value


def test_good_endorsement(chain: Chain) -> None:
    p, sig = chain.propose("health/alice", "assets", "create", "bike", "alice", 7)
    res = chain.endorsers[NODE].endorse(p, sig)
    assert res.response.status == 200
    assert res.rwset == ReadWriteSet(
        "assets", (KVRead("asset/bike", None),), (KVWrite("asset/bike", res.response.payload),)
    )
    assert decode(res.response.payload)["created_after_ms"] == chain.ledger.get_header(0).timestamp_ms  # the tip
    assert res.endorsement.endorser == chain.pki[NODE].cert
    msg = endorsement_digest(p.hash(), res.response, res.rwset)
    assert get_backend().verify(chain.pki[NODE].identity.public_key, res.endorsement.signature, msg)
    # endorsing twice gives the same response and rwset (ECDSA signatures themselves may differ)
    again = chain.endorsers["transport/transport-node1"].endorse(p, sig)
    assert (again.response, again.rwset) == (res.response, res.rwset)


def test_rejects_bad_signature(chain: Chain) -> None:
    p, _ = chain.propose("council/alice", "assets", "put", "k", b"v")
    forged = get_backend().sign(chain.pki["transport/alice"].key, p.hash())
    assert reject(chain, p, forged).code is RejectCode.BAD_SIGNATURE
    _, other_sig = chain.propose("council/alice", "assets", "put", "k", b"w")
    assert reject(chain, p, other_sig).code is RejectCode.BAD_SIGNATURE


def test_rejects_unknown_identity_and_wrong_channel(chain: Chain) -> None:
    p, sig = chain.propose("outsider/eve", "assets", "put", "k", b"v")
    err = reject(chain, p, sig)
    assert err.code is RejectCode.UNKNOWN_IDENTITY and "outsider" in err.message
    p, sig = chain.propose("council/alice", "assets", "put", "k", b"v", channel="other")
    err = reject(chain, p, sig)
    assert err.code is RejectCode.BAD_CHANNEL and "'other'" in err.message


def test_rejects_malformed_proposals(chain: Chain) -> None:
    p, sig = chain.propose("council/alice", "assets", "put", "k", b"v")
    short = dataclasses.replace(p, header=dataclasses.replace(p.header, nonce=b"123"))
    assert reject(chain, short, sig).code is RejectCode.BAD_PROPOSAL
    floaty = dataclasses.replace(p, args=(1.5,))
    assert reject(chain, floaty, sig).code is RejectCode.BAD_PROPOSAL


def test_rejects_expired_creator(chain: Chain) -> None:
    p, sig = chain.propose("council/alice", "assets", "put", "k", b"v")
    chain.clock = NOW + 900 * 86400  # past the 825-day certificate lifetime
    assert reject(chain, p, sig).code is RejectCode.EXPIRED_IDENTITY


def test_rejects_unknown_and_uninstalled_contracts(chain: Chain) -> None:
    p, sig = chain.propose("council/alice", "parking", "pay", 3)
    err = reject(chain, p, sig)
    assert err.code is RejectCode.UNKNOWN_CONTRACT and "not defined" in err.message
    bare = Endorser(
        chain.ledger, chain.view, ContractRegistry(), chain.pki[NODE].identity, chain.pki[NODE].key, lambda: NOW
    )
    p, sig = chain.propose("council/alice", "assets", "put", "k", b"v")
    with pytest.raises(ProposalRejected, match="not installed"):
        bare.endorse(p, sig)


def test_rejects_version_mismatch(chain: Chain) -> None:
    cfg = chain.ledger.latest_config()
    assert cfg is not None
    new = channel_config(chain.pki, 1, contracts=(ContractDefinition("assets", "2.0", "ANY(node)"),))
    assert chain.codes([chain.config_tx(new, ["council/admin", "health/admin"])]) == [0]
    p, sig = chain.propose("council/alice", "assets", "put", "k", b"v")
    err = reject(chain, p, sig)
    assert err.code is RejectCode.UNKNOWN_CONTRACT and "version 2.0 is defined" in err.message


def test_rejects_replayed_committed_tx(chain: Chain) -> None:
    p, sig = chain.propose("council/alice", "assets", "put", "k", b"v")
    tx = chain.endorse(p, sig, [NODE, "health/health-node1"])
    assert chain.codes([tx]) == [0]
    assert reject(chain, p, sig).code is RejectCode.DUPLICATE_TXID


def test_contract_error_is_not_endorsed(chain: Chain) -> None:
    p, sig = chain.propose("council/alice", "assets", "transfer", "nothing", "bob")
    with pytest.raises(ContractRejected) as info:
        chain.endorsers[NODE].endorse(p, sig)
    assert info.value.response.status == 404
    assert info.value.code is RejectCode.CONTRACT_ERROR
    assert "does not exist" in info.value.message


def test_config_updates_are_not_endorsed_but_can_be_dry_run(chain: Chain) -> None:
    new = channel_config(chain.pki, 1)
    p, sig = chain.propose("council/admin", "_config", "update", new.to_obj())
    assert reject(chain, p, sig).code is RejectCode.UNAUTHORIZED
    resp, rw, _extra, _private = chain.endorsers[NODE].evaluate(p, sig)
    assert resp.status == 200 and rw.reads == (KVRead("channel", (0, 0)),)
    stale = channel_config(chain.pki, 5)
    p, sig = chain.propose("council/admin", "_config", "update", stale.to_obj())
    with pytest.raises(ContractRejected, match="sequence must be 1"):
        chain.endorsers[NODE].evaluate(p, sig)


def test_evaluate_runs_queries(chain: Chain) -> None:
    assert chain.codes([chain.tx("council/alice", "put", "k", b"hello")]) == [0]
    p, sig = chain.propose("transport/alice", "assets", "get", "k")
    resp = chain.endorsers["health/health-node2"].evaluate(p, sig).response
    assert resp.payload == b"hello"
    p, sig = chain.propose("transport/alice", "assets", "get", "missing")
    with pytest.raises(ContractRejected):
        chain.endorsers[NODE].evaluate(p, sig)


def test_not_ready_before_genesis(chain: Chain, tmp_path: object) -> None:
    from storage.kv import Database
    from storage.ledger import ChannelLedger

    db = Database(chain.db.path.parent / "empty")
    try:
        empty = ChannelLedger(db, CHANNEL)
        from secprivnode.pipeline.membership import ChannelView

        e = Endorser(
            empty, ChannelView(empty), chain.registry, chain.pki[NODE].identity, chain.pki[NODE].key, lambda: NOW
        )
        p, sig = chain.propose("council/alice", "assets", "put", "k", b"v")
        with pytest.raises(ProposalRejected) as info:
            e.endorse(p, sig)
        assert info.value.code is RejectCode.NOT_READY
    finally:
        db.close()


def test_key_must_match_identity(chain: Chain) -> None:
    with pytest.raises(ValueError, match="does not match"):
        Endorser(chain.ledger, chain.view, chain.registry, chain.pki[NODE].identity, chain.pki["health/admin"].key, int)
