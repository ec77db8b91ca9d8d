"""The committer end to end on a real ledger: genesis, config, asset blocks, state, history, events."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_kit import BLOCK_MS0, CHANNEL, Chain, Pki, channel_config

from crypto.batch import BatchVerifier
from crypto.encoding import decode
from secprivnode.pipeline.committer import Committer
from secprivnode.pipeline.validator import BlockValidator
from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import ContractDefinition, ValidationCode

V = ValidationCode


def test_genesis_config_and_assets(pki: Pki, tmp_path: Path) -> None:
    chain = Chain(pki, tmp_path / "ledger")
    try:
        ledger = chain.ledger
        assert ledger.height == 1 and ledger.latest_config() == chain.config
        assert ledger.get_codes(0) == [V.VALID]

        # config: relax the assets policy to any single node
        relaxed = channel_config(pki, 1, contracts=(ContractDefinition("assets", "1.0", "ANY(node)"),))
        res = chain.commit([chain.config_tx(relaxed, ["transport/admin", "health/admin"])])
        assert res.codes == (V.VALID,) and res.config == relaxed and res.number == 1
        assert chain.view.config() == relaxed

        # assets: create two, then transfer one, each endorsed by one node as the new policy allows
        one = ["health/health-node2"]
        b2 = chain.commit(
            [
                chain.tx("council/alice", "create", "car", "council", {"plate": "SC-1"}, nodes=one),
                chain.tx("transport/alice", "create", "bus", "transport", nodes=one),
            ]
        )
        assert b2.codes == (V.VALID, V.VALID) and b2.valid_count == 2
        assert [e.events[0][0] for e in b2.txs] == ["asset.created", "asset.created"]
        b3 = chain.commit([chain.tx("council/alice", "transfer", "car", "transport", nodes=one)])
        assert b3.codes == (V.VALID,)
        ev = b3.txs[0]
        assert ev.contract == "assets" and ev.code is V.VALID
        assert decode(ev.events[0][1]) == {"id": "car", "from": "council", "to": "transport"}

        value, version = ledger.get_state("assets", "asset/car")  # type: ignore[misc]
        car = decode(value)
        assert (car["owner"], car["value"], version) == ("transport", {"plate": "SC-1"}, (3, 0))
        assert car["created_after_ms"] == BLOCK_MS0 + 1000  # block 1: the tip when it was endorsed; it landed in 2
        assert car["updated_after_ms"] == BLOCK_MS0 + 2000
        assert ledger.get_header(3).timestamp_ms >= car["updated_after_ms"]  # its own block: at or after
        history = ledger.get_history("assets", "asset/car")
        assert [h.version for h in history] == [(2, 0), (3, 0)]
        assert [decode(h.value)["owner"] for h in history] == ["council", "transport"]  # type: ignore[arg-type]

        # the contract's own history query sees the same
        p, sig = chain.propose("health/alice", "assets", "history", "car")
        resp = chain.endorsers["health/health-node1"].evaluate(p, sig).response
        assert [(e["block"], e["value"]["owner"]) for e in decode(resp.payload)] == [(2, "council"), (3, "transport")]

        # an invalid tx commits with its code, writes nothing, and emits no contract events
        t = chain.tx("transport/alice", "transfer", "bus", "x", nodes=one)
        stale = chain.tx("transport/alice", "transfer", "bus", "y", nodes=one)
        b4 = chain.commit([t, stale])
        assert b4.codes == (V.VALID, V.MVCC_READ_CONFLICT)
        assert b4.txs[1].events == () and b4.txs[0].events
        assert decode(ledger.get_state("assets", "asset/bus")[0])["owner"] == "x"  # type: ignore[index]
        assert ledger.tx_location(stale.tx_id) == (4, 1, V.MVCC_READ_CONFLICT)
        assert ledger.height == 5
    finally:
        chain.close()


def test_restart_resumes_from_the_committed_config(pki: Pki, tmp_path: Path) -> None:
    chain = Chain(pki, tmp_path / "ledger")
    relaxed = channel_config(pki, 1, contracts=(ContractDefinition("assets", "1.0", "ANY(node)"),))
    chain.commit([chain.config_tx(relaxed, ["transport/admin", "health/admin"])])
    tx = chain.tx("council/alice", "put", "k", b"1", nodes=["council/council-node2"])
    block = chain.block([tx])
    chain.close()

    db = Database(tmp_path / "ledger")
    try:
        ledger = ChannelLedger(db, CHANNEL)
        committer = Committer(ledger, BlockValidator(ledger, BatchVerifier(workers=1)))
        assert committer.commit(block).codes == (V.VALID,)
        assert ledger.get_state("assets", "kv/k") == (b"1", (2, 0))
    finally:
        db.close()


def test_validator_must_read_the_committed_ledger(chain: Chain, tmp_path: Path) -> None:
    db = Database(tmp_path / "other")
    try:
        other = ChannelLedger(db, CHANNEL)
        with pytest.raises(ValueError, match="must read the ledger"):
            Committer(other, chain.validator)
    finally:
        db.close()


def test_prepare_write_finish_is_commit_in_steps(pki: Pki, tmp_path: Path) -> None:
    chain = Chain(pki, tmp_path / "ledger")
    try:
        ledger, committer = chain.ledger, chain.committer
        relaxed = channel_config(pki, 1, contracts=(ContractDefinition("assets", "1.0", "ANY(node)"),))
        block = chain.block([chain.config_tx(relaxed, ["transport/admin", "health/admin"])])
        prepared = committer.prepare(block, checked=ledger.check_block(block))
        assert prepared.codes == (V.VALID,) and ledger.height == 1
        with pytest.raises(RuntimeError, match="has not been written"):
            committer.finish(prepared)
        # while block 1 is staged, nothing else can be staged on the old tip
        with pytest.raises(Exception, match="still being written"):
            committer.prepare(block)
        prepared.staged.write()
        res = committer.finish(prepared)
        assert (res.number, res.codes, res.config) == (1, (V.VALID,), relaxed)

        tx = chain.tx("council/alice", "create", "car", "alice", nodes=["health/health-node2"])
        nxt = chain.block([tx])
        with pytest.raises(ValueError, match="check of another block"):
            committer.prepare(nxt, checked=ledger.check_block(block))
        assert committer.commit(nxt).codes == (V.VALID,) and ledger.height == 3
    finally:
        chain.close()
