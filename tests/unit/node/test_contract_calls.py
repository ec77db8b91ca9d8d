"""Contract-to-contract calls: one transaction, a read/write set per namespace, validated and
committed together (both namespaces commit or neither does)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_kit import CHANNEL, Chain, FakeState, Pki, channel_config

from consensus.orderer.txcheck import inspect_tx
from crypto.encoding import decode, encode
from secprivnode.contracts.runtime import Contract, ContractError, query, simulate, transaction
from secprivnode.contracts.stub import MAX_CALL_DEPTH, MAX_NAMESPACES, Stub
from storage.codec import commit_slices
from storage.model import ContractDefinition, KVWrite, Proposal, ProposalHeader, ReadWriteSet, Transaction
from storage.model import ValidationCode as V

EASY = "ANY(node)"
STRICT = "AND('council.node', 'transport.node', 'health.node')"
ONE = ["health/health-node2"]


class Registry(Contract):
    """Users; ``book`` reads it, only its own functions write it."""

    name = "registry"

    @transaction
    def register(self, stub: Stub, user: str) -> None:
        stub.put_value("user/" + user, {"user": user})

    @query
    def exists(self, stub: Stub, user: str) -> bytes:
        return b"1" if stub.get_state("user/" + user) is not None else b"0"

    @transaction
    def touch(self, stub: Stub, user: str) -> None:
        stub.put_value("touched/" + user, True)
        raise ContractError("registry refuses", 409)


class Audit(Contract):
    """Append-only notes that only ``book`` may write."""

    name = "audit"

    @transaction
    def append(self, stub: Stub, key: str, text: str) -> bytes:
        if stub.calling_contract != "book":
            raise ContractError("only the book contract writes audit entries", 403)
        stub.put_value("log/" + key, {"text": text, "by": stub.caller.id})
        stub.set_event("audit.appended", key.encode())
        return b"noted"

    @query
    def read(self, stub: Stub, key: str) -> bytes:
        v = stub.get_state("log/" + key)
        return v if v is not None else b""


class Book(Contract):
    name = "book"

    @transaction
    def record(self, stub: Stub, user: str, amount: int) -> bytes:
        if stub.invoke_contract("registry", "exists", user) != b"1":
            raise ContractError(f"no user {user!r}", 404)
        stub.put_value("entry/" + user, amount)
        return stub.invoke_contract("audit", "append", user, f"recorded {amount}")

    @transaction
    def swallow(self, stub: Stub, user: str) -> None:
        try:
            stub.invoke_contract("registry", "touch", user)
        except ContractError:
            stub.put_value("swallowed/" + user, True)

    @transaction
    def call(self, stub: Stub, contract: str, function: str, *args: Any) -> bytes:
        return stub.invoke_contract(contract, function, *args)

    @transaction
    def deep(self, stub: Stub, n: int) -> bytes:
        return stub.invoke_contract("book", "deep", n + 1) if n < 100 else b"bottom"

    @query
    def peek(self, stub: Stub, user: str) -> bytes:
        return stub.invoke_contract("registry", "register", user)


def _config(pki: Pki, policies: dict[str, str] | None = None, sequence: int = 0) -> Any:
    p = {"assets": EASY, "book": EASY, "registry": EASY, "audit": EASY, **(policies or {})}
    return channel_config(pki, sequence, contracts=tuple(ContractDefinition(n, "1.0", p[n]) for n in sorted(p)))


@pytest.fixture
def calls(pki: Pki, tmp_path: Path) -> Iterator[Chain]:
    chain = Chain(pki, tmp_path / "ledger", _config(pki), contracts=[Registry(), Audit(), Book()])
    try:
        yield chain
    finally:
        chain.close()


def _tx(chain: Chain, contract: str, fn: str, *args: Any, nodes: list[str] | None = None) -> Transaction:
    p, sig = chain.propose("council/alice", contract, fn, *args)
    return chain.endorse(p, sig, nodes or ONE)


def _sim(pki: Pki, state: FakeState, contract: Contract, fn: str, *args: Any, **kw: Any) -> Any:
    contracts = {c.name: c for c in (Registry(), Audit(), Book())}

    def resolve(name: str) -> Contract:
        if name not in contracts:
            raise ContractError(f"contract {name!r} is not defined on this channel", 404)
        return contracts[name]

    header = ProposalHeader(CHANNEL, b"creator", b"\x01" * 24, 0)
    p = Proposal(header, contract.name, fn, tuple(args))
    return simulate(contract, p, state, pki["council/alice"].caller, 5000, resolve=resolve, **kw)


# ---- simulation ------------------------------------------------------------------------------


def test_a_call_records_a_rwset_per_namespace(pki: Pki, state: FakeState) -> None:
    state.set("registry", "user/ann", encode({"user": "ann"}), (3, 1))
    sim = _sim(pki, state, Book(), "record", "ann", 7)
    assert sim.response.status == 200 and sim.response.payload == b"noted"
    assert sim.rwset.namespace == "book" and [w.key for w in sim.rwset.writes] == ["entry/ann"]
    assert [rw.namespace for rw in sim.extra_rwsets] == ["audit", "registry"]  # sorted by namespace
    audit, registry = sim.extra_rwsets
    assert [w.key for w in audit.writes] == ["log/ann"]
    assert decode(audit.writes[0].value or b"") == {"text": "recorded 7", "by": "council/alice"}
    assert [(r.key, r.version) for r in registry.reads] == [("user/ann", (3, 1))] and registry.writes == ()
    assert sim.response.events == (("audit.appended", b"ann"),)


def test_a_callee_error_reaches_the_caller_and_its_writes_are_dropped(pki: Pki, state: FakeState) -> None:
    sim = _sim(pki, state, Book(), "swallow", "ann")
    assert sim.response.status == 200
    assert [w.key for w in sim.rwset.writes] == ["swallowed/ann"]
    assert sim.extra_rwsets == ()  # the refused call wrote nothing that stays, and read nothing

    uncaught = _sim(pki, state, Book(), "record", "nobody", 1)
    assert (uncaught.response.status, uncaught.response.message) == (404, "no user 'nobody'")
    assert uncaught.rwset == ReadWriteSet("book") and uncaught.extra_rwsets == ()


def test_callee_checks_who_called_it(pki: Pki, state: FakeState) -> None:
    direct = _sim(pki, state, Audit(), "append", "k", "forged")
    assert direct.response.status == 403
    via_other = _sim(pki, state, Book(), "call", "audit", "append", "k", "x")
    assert via_other.response.status == 200  # book is the calling contract


@pytest.mark.parametrize(
    ("args", "status", "needle"),
    [
        (("nosuch", "f"), 404, "'nosuch' is not defined"),
        (("registry", "nosuch"), 404, "has no function 'nosuch'"),
        (("registry", "exists"), 400, "bad arguments"),
        (("registry", "exists", 1.5), 400, "not canonical"),
        (("", "f"), 400, "non-empty"),
    ],
)
def test_bad_calls_are_clear_errors(
    pki: Pki, state: FakeState, args: tuple[Any, ...], status: int, needle: str
) -> None:
    sim = _sim(pki, state, Book(), "call", *args)
    assert sim.response.status == status and needle in sim.response.message


def test_calls_are_bounded_in_depth_and_namespaces(pki: Pki, state: FakeState) -> None:
    sim = _sim(pki, state, Book(), "deep", 0)
    assert sim.response.status == 400 and f"deeper than {MAX_CALL_DEPTH}" in sim.response.message

    class Fan(Contract):
        name = "fan"

        @transaction
        def go(self, stub: Stub, n: int) -> None:
            for i in range(n):
                stub.invoke_contract(f"leaf{i}", "w")

    class Leaf(Contract):
        @transaction
        def w(self, stub: Stub) -> None:
            stub.put_state("k", b"v")

    leaves = {f"leaf{i}": type(f"Leaf{i}", (Leaf,), {"name": f"leaf{i}"})() for i in range(MAX_NAMESPACES + 1)}
    p = Proposal(ProposalHeader(CHANNEL, b"c", b"\x02" * 24, 0), "fan", "go", (MAX_NAMESPACES - 1,))
    ok = simulate(Fan(), p, state, pki["council/alice"].caller, 0, resolve=leaves.__getitem__)
    assert ok.response.status == 200 and len(ok.extra_rwsets) == MAX_NAMESPACES - 1
    p = dataclasses.replace(p, args=(MAX_NAMESPACES,))
    over = simulate(Fan(), p, state, pki["council/alice"].caller, 0, resolve=leaves.__getitem__)
    assert over.response.status == 400 and f"more than {MAX_NAMESPACES} contracts" in over.response.message


def test_a_query_cannot_write_through_a_call(pki: Pki, state: FakeState) -> None:
    sim = _sim(pki, state, Book(), "peek", "ann")
    assert sim.response.status == 500 and "wrote key 'user/ann'" in sim.response.message


def test_without_a_resolver_calls_fail_cleanly(pki: Pki, state: FakeState) -> None:
    p = Proposal(ProposalHeader(CHANNEL, b"c", b"\x03" * 24, 0), "book", "record", ("ann", 1))
    sim = simulate(Book(), p, state, pki["council/alice"].caller, 0)
    assert sim.response.status == 400 and "not available" in sim.response.message


# ---- encoding --------------------------------------------------------------------------------


def test_a_transaction_without_calls_keeps_the_version_1_encoding(calls: Chain) -> None:
    calls.commit([_tx(calls, "registry", "register", "ann")])
    plain = _tx(calls, "registry", "register", "bob")
    assert len(plain.to_obj()) == 5
    with_calls = _tx(calls, "book", "record", "ann", 3)
    obj = with_calls.to_obj()
    assert len(obj) == 6 and [rw[0] for rw in obj[5]] == ["audit", "registry"]
    for tx in (plain, with_calls):
        data = tx.encode()
        assert Transaction.decode(data) == tx and Transaction.decode(data).encode() == data
        assert inspect_tx(data, CHANNEL, 1 << 20)[0] == tx.tx_id  # the orderer admits both shapes
    block = calls.block([plain, with_calls])
    sl = commit_slices(block.encode())
    assert sl.merkle_root == block.header.data_hash
    assert sl.rwsets[1][0] == "book" and [rw[0] for rw in sl.extra_rwsets[1]] == ["audit", "registry"]
    assert 0 not in sl.extra_rwsets


# ---- validation and commit -------------------------------------------------------------------


def test_both_namespaces_commit_together(calls: Chain) -> None:
    assert calls.codes([_tx(calls, "registry", "register", "ann")]) == [V.VALID]
    tx = _tx(calls, "book", "record", "ann", 5)
    res = calls.commit([tx])
    assert res.codes == (V.VALID,)
    ledger = calls.ledger
    assert decode(ledger.get_state("book", "entry/ann")[0]) == 5  # type: ignore[index]
    audit_value, audit_version = ledger.get_state("audit", "log/ann")  # type: ignore[misc]
    assert decode(audit_value)["text"] == "recorded 5" and audit_version == (res.number, 0)
    # the history of the callee's namespace reads the value from the transaction's extra rwsets
    (h,) = ledger.get_history("audit", "log/ann")
    assert h.version == (res.number, 0) and h.tx_id == tx.tx_id and h.value == audit_value
    stored = ledger.get_tx(tx.tx_id).tx
    assert stored == tx and [rw.namespace for rw in stored.extra_rwsets] == ["audit", "registry"]
    assert res.txs[0].events == (("audit.appended", b"ann"),)


def test_an_mvcc_conflict_in_a_called_namespace_commits_neither(calls: Chain) -> None:
    assert calls.codes([_tx(calls, "registry", "register", "ann")]) == [V.VALID]
    stale = _tx(calls, "book", "record", "ann", 1)  # read registry user/ann at its current version
    assert calls.codes([_tx(calls, "registry", "register", "ann")]) == [V.VALID]  # a new version
    assert calls.codes([stale]) == [V.MVCC_READ_CONFLICT]
    assert calls.ledger.get_state("book", "entry/ann") is None
    assert calls.ledger.get_state("audit", "log/ann") is None


def test_a_conflict_inside_one_block_on_the_called_namespace(calls: Chain) -> None:
    assert calls.codes([_tx(calls, "registry", "register", "ann")]) == [V.VALID]
    first = _tx(calls, "registry", "register", "ann")  # writes registry user/ann (blind)
    second = _tx(calls, "book", "record", "ann", 2)  # reads registry user/ann through a call
    assert calls.codes([first, second]) == [V.VALID, V.MVCC_READ_CONFLICT]
    assert calls.ledger.get_state("audit", "log/ann") is None
    # in the other order both are valid: the read happened before the write
    third = _tx(calls, "book", "record", "ann", 3)
    fourth = _tx(calls, "registry", "register", "ann")
    assert calls.codes([third, fourth]) == [V.VALID, V.VALID]


def test_every_written_namespace_needs_its_policy(pki: Pki, tmp_path: Path) -> None:
    chain = Chain(pki, tmp_path / "l", _config(pki, {"audit": STRICT}), contracts=[Registry(), Audit(), Book()])
    try:
        assert chain.codes([_tx(chain, "registry", "register", "ann")]) == [V.VALID]
        weak = _tx(chain, "book", "record", "ann", 1)  # book's policy holds, audit's does not
        assert chain.codes([weak]) == [V.ENDORSEMENT_POLICY_FAILURE]
        assert chain.ledger.get_state("book", "entry/ann") is None
        all_orgs = ["council/council-node1", "transport/transport-node1", "health/health-node1"]
        assert chain.codes([_tx(chain, "book", "record", "ann", 1, nodes=all_orgs)]) == [V.VALID]
        # registry is only read by record: its (strict) policy is not needed
    finally:
        chain.close()


def test_reading_a_namespace_does_not_need_its_policy(pki: Pki, tmp_path: Path) -> None:
    chain = Chain(
        pki,
        tmp_path / "l",
        _config(pki, {"registry": "AND('council.node', 'transport.node')"}),
        contracts=[Registry(), Audit(), Book()],
    )
    try:
        two = ["council/council-node1", "transport/transport-node1"]
        assert chain.codes([_tx(chain, "registry", "register", "ann", nodes=two)]) == [V.VALID]
        assert chain.codes([_tx(chain, "book", "record", "ann", 1)]) == [V.VALID]
    finally:
        chain.close()


def test_a_called_contract_must_be_defined_when_written(pki: Pki, tmp_path: Path) -> None:
    chain = Chain(pki, tmp_path / "l", _config(pki), contracts=[Registry(), Audit(), Book()])
    try:
        assert chain.codes([_tx(chain, "registry", "register", "ann")]) == [V.VALID]
        tx = _tx(chain, "book", "record", "ann", 1)
        # the channel drops the audit contract before the transaction is ordered
        cur = chain.ledger.latest_config()
        assert cur is not None
        new = dataclasses.replace(cur, sequence=1, contracts=tuple(c for c in cur.contracts if c.name != "audit"))
        assert chain.codes([chain.config_tx(new, ["council/admin", "transport/admin"])]) == [V.VALID]
        assert chain.codes([tx]) == [V.UNKNOWN_CONTRACT]
        # and endorsing it now fails in the call
        p, sig = chain.propose("council/alice", "book", "record", "ann", 1)
        with pytest.raises(Exception, match="'audit' is not defined"):
            chain.endorse(p, sig, ONE)
    finally:
        chain.close()


def _resigned(chain: Chain, tx: Transaction, extra: tuple[ReadWriteSet, ...]) -> Transaction:
    """``tx`` with other extra rwsets, endorsed again over them (an endorser that lies)."""
    from crypto.signing import get_backend
    from storage.model import Endorsement, endorsement_digest

    node = chain.pki[ONE[0]]
    sig = get_backend().sign(node.key, endorsement_digest(tx.proposal.hash(), tx.response, tx.rwset, extra))
    return dataclasses.replace(tx, endorsements=(Endorsement(node.cert, sig),), extra_rwsets=extra)


def test_malformed_extra_rwsets_are_bad_payload(calls: Chain) -> None:
    assert calls.codes([_tx(calls, "registry", "register", "ann")]) == [V.VALID]
    good = _tx(calls, "book", "record", "ann", 1)
    audit, registry = good.extra_rwsets
    own = ReadWriteSet("book", (), (KVWrite("x", b"1"),))
    cfg = ReadWriteSet("_config", (), (KVWrite("channel", b"1"),))
    cases = [
        (registry, audit),  # not sorted
        (audit, audit),  # repeated
        (audit, own),  # the contract's own namespace
        (cfg,),  # the config namespace
    ]
    for extra in cases:
        assert calls.codes([_resigned(calls, good, extra)]) == [V.BAD_PAYLOAD], extra
    # dropping the extras breaks the endorsement signature
    stripped = dataclasses.replace(good, extra_rwsets=())
    assert calls.codes([stripped]) == [V.BAD_ENDORSEMENT_SIGNATURE]
    # a version 1 block may not carry them
    assert calls.codes([good], version=1) == [V.BAD_PAYLOAD]
    assert calls.codes([good]) == [V.VALID]


# ---- the gateway -----------------------------------------------------------------------------


class _Links:
    """A transport whose requests reach the other nodes' gateways in-process (canonical values
    re-decoded, as the wire would)."""

    def __init__(self, me: str, gateways: dict[str, Any]) -> None:
        self.me, self.gateways = me, gateways

    def connected_peers(self) -> list[str]:
        return [n for n in self.gateways if n != self.me]

    async def request(self, node_id: str, kind: int, payload: Any, timeout_s: float) -> Any:
        answer = await self.gateways[node_id].on_endorse(self.me, decode(encode(payload)))
        return decode(encode(answer))


def test_the_gateway_adds_endorsers_for_the_written_namespaces(pki: Pki, tmp_path: Path) -> None:
    import asyncio
    from types import SimpleNamespace

    from secprivnode.gateway import Gateway

    chain = Chain(pki, tmp_path / "l", _config(pki, {"audit": STRICT}), contracts=[Registry(), Audit(), Book()])
    try:
        gateways: dict[str, Any] = {}
        asked: list[str] = []
        for ident, endorser in chain.endorsers.items():
            org, node = ident.split("/")
            ch = SimpleNamespace(
                name=CHANNEL, view=chain.view, endorser=endorser, require_healthy=lambda: None, excluded=None
            )
            gateways[node] = Gateway(node, org, {CHANNEL: ch}, _Links(node, gateways))  # type: ignore[dict-item]
            real = gateways[node].on_endorse

            async def on_endorse(peer: str, payload: Any, _real: Any = real, _node: str = node) -> Any:
                asked.append(_node)
                return await _real(peer, payload)

            gateways[node].on_endorse = on_endorse
        gw = gateways["council-node1"]
        p, sig = chain.propose("council/alice", "registry", "register", "ann")
        assert chain.codes([asyncio.run(gw.endorse(p, sig))]) == [V.VALID]
        assert asked == []  # ANY(node): the gateway's own node endorses alone

        p, sig = chain.propose("council/alice", "book", "record", "ann", 4)
        tx = asyncio.run(gw.endorse(p, sig))
        assert sorted(asked) == ["health-node1", "transport-node1"]  # audit's AND of the three orgs
        assert [rw.namespace for rw in tx.extra_rwsets] == ["audit", "registry"] and len(tx.endorsements) == 3
        assert chain.codes([tx]) == [V.VALID]
        assert chain.ledger.get_state("audit", "log/ann") is not None
    finally:
        chain.close()
