"""Contract runtime and stub: read/write sets, error mapping, determinism, the sample contracts."""

from __future__ import annotations

from typing import Any

import pytest
from pipeline_kit import NOW, FakeState, Pki

from crypto.encoding import decode, encode
from secprivnode.contracts.assets import AssetsContract
from secprivnode.contracts.builtin import builtin_registry
from secprivnode.contracts.config_contract import ConfigContract, config_rwset
from secprivnode.contracts.runtime import Contract, query, simulate, transaction
from secprivnode.contracts.stub import MAX_KEY_BYTES, MAX_RANGE_KEYS, ContractError, Stub
from storage.model import (
    BatchConfig,
    ChannelConfig,
    ChannelNode,
    ContractDefinition,
    KVRead,
    KVWrite,
    Proposal,
    ProposalHeader,
    RangeRead,
    ReadWriteSet,
    Response,
)

BLOCK_MS = NOW * 1000


def proposal(contract: str, function: str, *args: Any, transient: dict[str, bytes] | None = None) -> Proposal:
    header = ProposalHeader("city", b"creator-cert", b"n" * 24, 5)
    return Proposal(header, contract, function, tuple(args), transient or {})


class Probe(Contract):
    """Exercises the stub directly."""

    name = "probe"

    @transaction
    def write_then_read(self, stub: Stub, key: str) -> bytes:
        stub.put_state(key, b"new")
        got = stub.get_state(key)  # no read-your-writes: the committed value (or None)
        return b"none" if got is None else got

    @transaction
    def scan(self, stub: Stub, start: str, end: str) -> bytes:
        rows = stub.get_range(start, end)
        stub.put_state("seen", encode(len(rows)))
        return encode([k for k, _v in rows])

    @transaction
    def remove(self, stub: Stub, key: str) -> None:
        stub.del_state(key)
        stub.set_event("removed", key.encode())

    @transaction
    def whoami(self, stub: Stub) -> bytes:
        return encode([stub.caller.id, stub.caller.role, stub.tx_id, stub.block_timestamp_ms, stub.transient["t"]])

    @transaction
    def history(self, stub: Stub, key: str) -> bytes:
        return encode([[list(v), val] for v, val in stub.get_history(key)])

    @transaction
    def fail(self, stub: Stub, status: int) -> None:
        stub.put_state("x", b"never")
        raise ContractError("asset is frozen", status)

    @transaction
    def crash(self, stub: Stub) -> None:
        stub.put_state("x", b"never")
        raise ZeroDivisionError("division by zero")

    @transaction
    def wrong_return(self, stub: Stub) -> Any:
        return 3

    @transaction
    def float_value(self, stub: Stub) -> None:
        stub.put_value("f", {"price": 1.5})

    @transaction
    def bad_key(self, stub: Stub, key: Any) -> None:
        stub.put_state(key, b"v")

    @query
    def sneaky(self, stub: Stub) -> None:
        stub.put_state("k", b"v")

    def not_exposed(self, stub: Stub) -> None:
        raise AssertionError("never callable")


def run(
    state: FakeState, c: Contract, fn: str, *args: Any, pki: Pki | None = None, **kw: Any
) -> tuple[Response, ReadWriteSet]:
    caller = pki["council/alice"].caller if pki else _caller()
    sim = simulate(c, proposal(c.name, fn, *args, **kw), state, caller, BLOCK_MS)
    assert sim.extra_rwsets == ()
    return sim.response, sim.rwset


def _caller() -> Any:
    from secprivnode.contracts.stub import Caller

    return Caller("council", "client", "alice", b"cert")


def test_no_read_your_writes(state: FakeState) -> None:
    resp, rw = run(state, Probe(), "write_then_read", "k")
    assert resp == Response(200, "", b"none")
    assert rw == ReadWriteSet("probe", (KVRead("k", None),), (KVWrite("k", b"new"),))
    state.set("probe", "k", b"old", (3, 1))
    resp, rw = run(state, Probe(), "write_then_read", "k")
    assert resp.payload == b"old"
    assert rw.reads == (KVRead("k", (3, 1)),)


def test_range_reads_are_recorded_for_phantom_checks(state: FakeState) -> None:
    for i, k in enumerate(["a", "b1", "b2", "c"]):
        state.set("probe", k, b"v", (1, i))
    state.set("other", "b3", b"v", (1, 9))  # another namespace is invisible
    resp, rw = run(state, Probe(), "scan", "b", "c")
    assert decode(resp.payload) == ("b1", "b2")
    assert rw.range_reads == (RangeRead("b", "c", (KVRead("b1", (1, 1)), KVRead("b2", (1, 2)))),)
    assert rw.reads == ()
    _, rw = run(state, Probe(), "scan", "b", "")
    assert [r.key for r in rw.range_reads[0].reads] == ["b1", "b2", "c"]


def test_range_scan_budget(state: FakeState) -> None:
    for i in range(MAX_RANGE_KEYS + 1):
        state.data[("probe", f"k{i:06d}")] = (b"", (1, i))
    resp, rw = run(state, Probe(), "scan", "k", "")
    assert resp.status == 400 and "more than" in resp.message
    assert rw == ReadWriteSet("probe")


def test_delete_and_events(state: FakeState) -> None:
    state.set("probe", "k", b"v", (1, 0))
    resp, rw = run(state, Probe(), "remove", "k")
    assert rw.writes == (KVWrite("k", None),)
    assert resp.events == (("removed", b"k"),)


def test_caller_tx_time_and_transient(state: FakeState, pki: Pki) -> None:
    p = proposal("probe", "whoami", transient={"t": b"secret"})
    resp = simulate(Probe(), p, state, pki["health/alice"].caller, BLOCK_MS).response
    assert decode(resp.payload) == ("health/alice", "client", p.tx_id, BLOCK_MS, b"secret")


def test_history_passes_through(state: FakeState) -> None:
    state.set("probe", "k", b"1", (1, 0))
    state.set("probe", "k", b"2", (2, 0))
    resp, rw = run(state, Probe(), "history", "k")
    assert decode(resp.payload) == (((1, 0), b"1"), ((2, 0), b"2"))
    assert rw.reads == ()  # history is not MVCC-protected, as in Fabric


def test_contract_error_is_4xx_and_drops_writes(state: FakeState) -> None:
    assert run(state, Probe(), "fail", 400) == (Response(400, "asset is frozen"), ReadWriteSet("probe"))
    assert run(state, Probe(), "fail", 404)[0] == Response(404, "asset is frozen")
    resp, _ = run(state, Probe(), "fail", 200)  # a contract cannot fake success through ContractError
    assert resp.status == 500 and "4xx" in resp.message


def test_unexpected_exception_is_500(state: FakeState) -> None:
    resp, rw = run(state, Probe(), "crash")
    assert resp.status == 500
    assert resp.message == "probe.crash failed: ZeroDivisionError: division by zero"
    assert rw == ReadWriteSet("probe")
    assert run(state, Probe(), "wrong_return")[0].status == 500


def test_ledger_failure_is_not_blamed_on_the_contract(state: FakeState) -> None:
    class Broken(FakeState):
        def get_state(self, ns: str, key: str) -> Any:
            raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        run(Broken(), Probe(), "write_then_read", "k")


def test_floats_and_bad_keys_are_refused(state: FakeState) -> None:
    resp, _ = run(state, Probe(), "float_value")
    assert resp.status == 400 and "float" in resp.message
    for key, why in [("", "empty"), ("a\x00b", "NUL"), ("k" * (MAX_KEY_BYTES + 1), "longer"), (7, "string")]:
        resp, _ = run(state, Probe(), "bad_key", key)
        assert resp.status == 400 and why in resp.message, (key, resp)
    resp, _ = run(state, Probe(), "bad_key", "é" * (MAX_KEY_BYTES // 2 + 1))  # bytes, not characters
    assert resp.status == 400
    resp, _ = run(state, Probe(), "bad_key", "\ud800")
    assert resp.status == 400 and "surrogate" in resp.message
    # float arguments never reach the contract
    resp = simulate(Probe(), proposal("probe", "bad_key", 1.5), state, _caller(), BLOCK_MS).response
    assert resp.status == 400 and "canonical" in resp.message


def test_functions_args_and_read_only(state: FakeState) -> None:
    assert run(state, Probe(), "not_exposed")[0].status == 404
    assert run(state, Probe(), "nope")[0].status == 404
    resp, _ = run(state, Probe(), "write_then_read")
    assert resp.status == 400 and "bad arguments" in resp.message
    assert run(state, Probe(), "write_then_read", "a", "b")[0].status == 400
    resp, _ = run(state, Probe(), "sneaky")
    assert resp.status == 500 and "query function wrote" in resp.message
    # a transaction function run through the read-only (evaluate) path cannot write either
    resp = simulate(Probe(), proposal("probe", "remove", "k"), state, _caller(), BLOCK_MS, read_only=True).response
    assert resp.status == 500
    assert set(Probe.functions) == {
        "write_then_read", "scan", "remove", "whoami", "history", "fail", "crash",
        "wrong_return", "float_value", "bad_key", "sneaky",
    }  # fmt: skip
    assert Probe.functions["sneaky"].read_only and not Probe.functions["scan"].read_only


def test_simulation_is_deterministic(state: FakeState) -> None:
    state.set("assets", "asset/x", encode({"id": "x", "owner": "o", "value": 1}), (1, 0))
    a = run(state, AssetsContract(), "transfer", "x", "bob")
    b = run(state, AssetsContract(), "transfer", "x", "bob")
    assert a == b
    assert encode(a[1].to_obj()) == encode(b[1].to_obj())


def test_registry() -> None:
    reg = builtin_registry()
    assert reg.names() == ["_config"]  # every other contract comes through the lifecycle
    reg.install(AssetsContract())
    assert "assets" in reg and reg.get("missing") is None
    with pytest.raises(ValueError, match="already installed"):
        reg.install(AssetsContract())

    class Empty(Contract):
        name = "empty"

    with pytest.raises(ValueError, match="no @transaction"):
        reg.install(Empty())


# ---- the assets contract ----------------------------------------------------------------------


def test_assets_lifecycle(state: FakeState, pki: Pki) -> None:
    c = AssetsContract()
    resp, rw = run(state, c, "create", "car1", "council", {"colour": "red"}, pki=pki)
    assert resp.status == 200
    asset = decode(resp.payload)
    assert asset == {
        "id": "car1",
        "owner": "council",
        "value": {"colour": "red"},
        "created_after_ms": BLOCK_MS,  # the tip the endorser saw, not the tx's own (future) block
        "updated_after_ms": BLOCK_MS,
        "creator": "council/alice",
    }
    assert rw.reads == (KVRead("asset/car1", None),)
    assert rw.writes == (KVWrite("asset/car1", resp.payload),)
    assert resp.events[0][0] == "asset.created"
    state.set("assets", "asset/car1", rw.writes[0].value or b"", (1, 0))

    assert run(state, c, "create", "car1", "bob")[0].status == 409
    assert decode(run(state, c, "read", "car1")[0].payload)["owner"] == "council"
    assert run(state, c, "read", "car2")[0].status == 404

    resp, rw = run(state, c, "update", "car1", [1, 2])
    assert decode(resp.payload)["value"] == (1, 2)
    resp, rw = run(state, c, "transfer", "car1", "transport")
    assert decode(resp.payload)["owner"] == "transport"
    assert rw.reads == (KVRead("asset/car1", (1, 0)),)
    assert decode(resp.events[0][1]) == {"id": "car1", "from": "council", "to": "transport"}
    assert run(state, c, "transfer", "nope", "bob")[0].status == 404

    resp, rw = run(state, c, "delete", "car1")
    assert resp.status == 200 and rw.writes == (KVWrite("asset/car1", None),)
    assert run(state, c, "delete", "ghost")[0].status == 404


@pytest.mark.parametrize("fn,args", [("update", ("v",)), ("transfer", ("health",)), ("delete", ())])
@pytest.mark.parametrize("who", ["transport/alice", "transport/admin", "health/health-node1", "outsider/eve"])
def test_only_the_owner_organisation_may_change_an_asset(
    state: FakeState, pki: Pki, fn: str, args: tuple[Any, ...], who: str
) -> None:
    c = AssetsContract()
    resp, rw = run(state, c, "create", "lamp-7", "council", pki=pki)
    state.set("assets", "asset/lamp-7", rw.writes[0].value or b"", (1, 0))
    caller = pki[who].caller
    sim = simulate(c, proposal("assets", fn, "lamp-7", *args), state, caller, BLOCK_MS)
    resp, rw = sim.response, sim.rwset
    assert resp.status == 403, resp
    assert f"{who} may not {fn} asset 'lamp-7'" in resp.message and "'council'" in resp.message
    assert rw.writes == ()  # an error response carries no writes: nothing can be ordered
    # any identity of the owner organisation may, whatever its role
    for member in ("council/alice", "council/admin", "council/council-node2"):
        ok = simulate(c, proposal("assets", fn, "lamp-7", *args), state, pki[member].caller, BLOCK_MS).response
        assert ok.status == 200, (member, ok)


def test_assets_put_get_list(state: FakeState) -> None:
    c = AssetsContract()
    resp, rw = run(state, c, "put", "k1", b"\x01")
    assert resp.status == 200 and rw == ReadWriteSet("assets", (), (KVWrite("kv/k1", b"\x01"),))  # blind
    assert run(state, c, "put", "k1", "text")[0].status == 400
    assert run(state, c, "get", "k1")[0].status == 404
    state.set("assets", "kv/k1", b"\x01", (1, 0))
    assert run(state, c, "get", "k1")[0].payload == b"\x01"
    for i, a in enumerate(["a", "b", "c"]):
        state.set("assets", f"asset/{a}", encode({"id": a, "owner": "o"}), (2, i))
    resp, rw = run(state, c, "list")
    assert decode(resp.payload) == ("a", "b", "c")
    assert rw.range_reads[0].start == "asset/" and rw.range_reads[0].end == "asset0"
    assert decode(run(state, c, "list", "b", "c")[0].payload) == ("b",)


# ---- the config system contract ----------------------------------------------------------------


def make_config(pki: Pki, sequence: int = 0, **changes: Any) -> ChannelConfig:
    base: dict[str, Any] = {
        "channel": "city",
        "sequence": sequence,
        "orgs": pki.org_configs(),
        "nodes": tuple(ChannelNode(f"{o}-node1", o, f"127.0.0.1:{7000 + i}", True) for i, o in enumerate(pki.cas)),
        "batch": BatchConfig(),
        "contracts": (ContractDefinition("assets", "1.0", "ANY(node)"),),
        "admin_policy": "MAJORITY(admin)",
    }
    base.update(changes)
    return ChannelConfig(**base)


def test_config_contract(state: FakeState, pki: Pki) -> None:
    c = ConfigContract()
    genesis = make_config(pki)
    resp, rw = run(state, c, "update", genesis.to_obj())
    assert resp.status == 200
    assert rw == config_rwset(genesis, None)
    state.set("_config", "channel", encode(genesis.to_obj()), (0, 0))

    nxt = make_config(pki, 1, contracts=())
    resp, rw = run(state, c, "update", nxt.to_obj())
    assert resp.status == 200 and rw == config_rwset(nxt, (0, 0))

    for bad, why in [
        (make_config(pki, 2), "sequence must be 1"),
        (make_config(pki, 1, channel="other"), "not 'city'"),
        (make_config(pki, 1, orgs=()), "at least one organisation"),
        (make_config(pki, 1, nodes=(ChannelNode("n", "council", "h:1", False),)), "at least one orderer"),
        (make_config(pki, 1, admin_policy="AND("), "admin policy"),
        (make_config(pki, 1, admin_policy="'council.node'"), "'<org>.admin'"),
        (make_config(pki, 1, contracts=(ContractDefinition("_x", "1", "ANY(node)"),)), "reserved"),
        (make_config(pki, 1, contracts=(ContractDefinition("x", "1", "'ghost.node'"),)), "unknown organisation"),
    ]:
        resp, rw = run(state, c, "update", bad.to_obj())
        assert resp.status == 400 and why in resp.message, (why, resp.message)
    resp, _ = run(state, c, "update", ["not", "a", "config"])
    assert resp.status == 400 and "malformed channel config" in resp.message


def test_history_is_bounded(state: FakeState) -> None:
    class Hist(Contract):
        name = "hist"

        @query
        def h(self, stub: Stub, limit: int) -> bytes:
            return encode(len(stub.get_history("k", limit)))

    for i in range(5):
        state.set("hist", "k", b"v", (i, 0))
    assert decode(run(state, Hist(), "h", 3)[0].payload) == 3
    assert run(state, Hist(), "h", 0)[0].status == 400
    assert run(state, Hist(), "h", 10**6)[0].status == 400
