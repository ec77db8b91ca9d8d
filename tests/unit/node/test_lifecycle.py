"""The contract lifecycle on a real ledger: definitions committed by config transactions carrying
package code, approvals counted under the admin policy, code loaded (and hash-checked) from the
ledger, and upgrades taking effect at the block that commits them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pipeline_kit import Chain, FakeState

from crypto.encoding import decode, encode
from secprivnode.contract_admin import next_config
from secprivnode.contracts.lifecycle import (
    ContractLoadError,
    LifecycleError,
    LifecycleRegistry,
    check_definitions,
    definition_key,
    package_key,
    vet_update,
)
from secprivnode.contracts.package import ContractPackage
from secprivnode.contracts.runtime import ContractRegistry
from secprivnode.pipeline.errors import ProposalRejected, RejectCode
from storage.model import ChannelConfig, ContractDefinition, KVWrite, MalformedError, ValidationCode

V = ValidationCode
ADMINS = ["council/admin", "transport/admin"]  # two of three: MAJORITY(admin)

NOTES = """
from secprivnode.contracts.api import Contract, Stub, transaction


class Notes(Contract):
    name = "notes"

    @transaction
    def put(self, stub: Stub, key: str, text: str) -> bytes:
        stub.put_state(key, TRANSFORM.encode())
        return VERSION
"""


def notes(version: str, transform: str = "text", policy: str = "ANY(node)") -> ContractPackage:
    src = NOTES.replace("TRANSFORM", transform).replace("VERSION", repr(version.encode()))
    return ContractPackage("notes", version, policy, (("contract.py", src.encode()),))


def latest(chain: Chain) -> ChannelConfig:
    cfg = chain.ledger.latest_config()
    assert cfg is not None
    return cfg


def install(chain: Chain, pkg: ContractPackage, admins: list[str] = ADMINS, **kw: Any) -> tuple[ValidationCode, int]:
    new = next_config(latest(chain), pkg)
    packages = kw.pop("packages", [pkg.code_bytes()])
    result = chain.commit([chain.config_tx(dataclasses.replace(new, **kw), admins, packages=packages)])
    return result.codes[0], chain.ledger.height - 1


def put(chain: Chain, key: str, node: str = "health/health-node1") -> Any:
    p, sig = chain.propose("health/alice", "notes", "put", key, "hello")
    return chain.endorse(p, sig, [node])


# ---- encoding -------------------------------------------------------------------------------------


def test_definition_encoding_keeps_old_configs_byte_identical() -> None:
    old = ["assets", "1.0", "ANY(node)"]
    d = ContractDefinition.from_obj(old)
    assert encode(d.to_obj()) == encode(old) and (d.package_hash, d.sequence) == (b"", 0)
    new = ContractDefinition("assets", "1.0", "ANY(node)", b"\x01" * 32, 3)
    assert ContractDefinition.from_obj(decode(encode(new.to_obj()))) == new
    for bad in ([*old, b""], [*old, b"", 0], [*old, b"h", -1], [*old, "h", 1]):
        with pytest.raises(MalformedError):
            ContractDefinition.from_obj(bad)


# ---- install, upgrade ---------------------------------------------------------------------------------


def test_install_and_upgrade_take_effect_at_their_block(chain: Chain) -> None:
    with pytest.raises(ProposalRejected) as info:
        put(chain, "a")
    assert info.value.code is RejectCode.UNKNOWN_CONTRACT

    v1 = notes("1.0")
    code, installed_at = install(chain, v1)
    assert code is V.VALID
    d = latest(chain).contract("notes")
    assert d == ContractDefinition("notes", "1.0", "ANY(node)", v1.hash, 1)
    assert chain.ledger.get_state("_config", package_key(v1.hash)) == (v1.code_bytes(), (installed_at, 0))
    assert chain.ledger.get_state("_config", definition_key("notes")) == (encode(d.to_obj()), (installed_at, 0))

    tx1 = put(chain, "a")
    assert tx1.response.payload == b"1.0" and tx1.rwset.writes[0].value == b"hello"
    assert chain.codes([tx1]) == [V.VALID]

    v2 = notes("2.0", transform="text.upper()")
    code, upgraded_at = install(chain, v2)
    assert code is V.VALID and latest(chain).contract("notes").sequence == 2  # type: ignore[union-attr]
    for node in ("health/health-node1", "council/council-node2"):  # every endorser now runs v2
        tx2 = put(chain, "b", node)
        assert tx2.response.payload == b"2.0" and tx2.rwset.writes[0].value == b"HELLO"
    assert chain.codes([tx2]) == [V.VALID]
    assert upgraded_at > installed_at
    # v1's package stays in state (an old block's code is still readable); the definition moved on
    assert chain.ledger.get_state("_config", package_key(v1.hash)) is not None
    assert chain.ledger.get_version("_config", definition_key("notes")) == (upgraded_at, 0)

    # a policy-only change keeps the code: no package carried, next definition sequence
    cfg = latest(chain)
    relaxed = dataclasses.replace(cfg.contract("notes"), policy="MAJORITY(node)", sequence=3)  # type: ignore[type-var]
    new = dataclasses.replace(cfg, sequence=cfg.sequence + 1, contracts=(*cfg.contracts[:-1], relaxed))
    assert chain.codes([chain.config_tx(new, ADMINS)]) == [V.VALID]
    assert put(chain, "c").response.payload == b"2.0"

    # a packaged contract cannot fall back to a definition without a package
    cfg = latest(chain)
    bare = ContractDefinition("notes", "2.0", "MAJORITY(node)")
    new = dataclasses.replace(cfg, sequence=cfg.sequence + 1, contracts=(*cfg.contracts[:-1], bare))
    with pytest.raises(LifecycleError, match="must name a package"):
        check_definitions(cfg, new, [])
    assert chain.codes([chain.config_tx(new, ADMINS)]) == [V.INVALID_CONFIG]


def test_a_transaction_simulated_on_the_old_definition_fails_after_the_upgrade(chain: Chain) -> None:
    assert install(chain, notes("1.0"))[0] is V.VALID
    early, same_block = put(chain, "a"), put(chain, "b")
    # the endorser recorded which definition the code came from: a read in _config
    (definitions,) = early.extra_rwsets
    assert definitions.namespace == "_config" and [r.key for r in definitions.reads] == ["definition/notes"]
    assert not definitions.writes
    v2 = notes("2.0", transform="text.upper()")
    upgrade = chain.config_tx(next_config(latest(chain), v2), ADMINS, packages=[v2.code_bytes()])
    # ordered in the same block after the upgrade, or in a later block: refused by MVCC
    assert chain.codes([upgrade, same_block]) == [V.VALID, V.MVCC_READ_CONFLICT]
    assert chain.codes([early]) == [V.MVCC_READ_CONFLICT]
    assert chain.ledger.get_state("notes", "a") is None and chain.ledger.get_state("notes", "b") is None
    fresh = put(chain, "a")
    assert chain.codes([fresh]) == [V.VALID] and chain.ledger.get_state("notes", "a")[0] == b"HELLO"  # type: ignore[index]


def test_config_reads_other_than_definitions_are_refused(chain: Chain) -> None:
    assert install(chain, notes("1.0"))[0] is V.VALID
    tx = put(chain, "a")
    (definitions,) = tx.extra_rwsets
    for forged in (
        dataclasses.replace(definitions, reads=(dataclasses.replace(definitions.reads[0], key="channel"),)),
        dataclasses.replace(definitions, writes=(KVWrite("definition/notes", b"x"),)),
    ):
        assert chain.codes([dataclasses.replace(tx, extra_rwsets=(forged,))]) == [V.BAD_PAYLOAD]


def test_approvals_are_counted_under_the_admin_policy(chain: Chain) -> None:
    pkg = notes("1.0")
    assert install(chain, pkg, ["council/admin"])[0] is V.INVALID_CONFIG  # one of three admins
    assert install(chain, pkg, ["council/admin", "transport/transport-node1"])[0] is V.INVALID_CONFIG  # a node
    assert latest(chain).contract("notes") is None
    assert install(chain, pkg, ["health/admin", "council/admin"])[0] is V.VALID


@pytest.mark.parametrize(
    ("change", "packages", "message"),
    [
        ({}, [], "must carry package"),
        ({}, ["extra"], "no changed definition names"),
        ({"sequence": 2}, None, "definition sequence must be 1, got 2"),
        ({"version": "9"}, None, "the package is 'notes' 1.0, not this definition"),
        ({"package_hash": b""}, None, "without a package has sequence 0"),
    ],
)
def test_definitions_must_follow_the_rules(chain: Chain, change: dict[str, Any], packages: Any, message: str) -> None:
    pkg = notes("1.0")
    cur = latest(chain)
    new = next_config(cur, pkg)
    d = dataclasses.replace(new.contracts[-1], **change)
    new = dataclasses.replace(new, contracts=(*new.contracts[:-1], d))
    if packages is None:
        packages = [pkg.code_bytes()]
    elif packages == ["extra"]:
        packages = [pkg.code_bytes(), notes("1.1").code_bytes()]
    with pytest.raises(LifecycleError, match=message):
        check_definitions(cur, new, packages)
    assert chain.codes([chain.config_tx(new, ADMINS, packages=packages)]) == [V.INVALID_CONFIG]


def test_vet_update_applies_the_sandbox_but_validation_does_not(chain: Chain) -> None:
    bad = ContractPackage("notes", "1.0", "ANY(node)", (("contract.py", NOTES.replace("TRANSFORM", "1.5").encode()),))
    new = next_config(latest(chain), bad)
    with pytest.raises(LifecycleError, match=r"contract.py:\d+: rule 'float'"):
        vet_update(latest(chain), new, [bad.code_bytes()])
    # a definition committed anyway (validity never depends on parsing code) is refused at load
    assert install(chain, bad)[0] is V.VALID
    with pytest.raises(ProposalRejected) as info:
        put(chain, "a")
    assert info.value.code is RejectCode.UNKNOWN_CONTRACT and "rule 'float'" in str(info.value)


# ---- loading ---------------------------------------------------------------------------------------------


class _State(FakeState):
    def __init__(self, config: ChannelConfig) -> None:
        super().__init__()
        self.config = config

    def latest_config(self) -> ChannelConfig | None:
        return self.config


def _registry(chain: Chain, pkg: ContractPackage, stored: bytes | None) -> LifecycleRegistry:
    state = _State(next_config(latest(chain), pkg))
    if stored is not None:
        state.set("_config", package_key(pkg.hash), stored, (1, 0))
    return LifecycleRegistry(ContractRegistry(), state)


def test_code_whose_hash_differs_from_the_definition_is_refused(chain: Chain) -> None:
    v1, other = notes("1.0"), notes("1.0", transform="text.upper()")
    with pytest.raises(ContractLoadError, match="refusing to run it"):
        _registry(chain, v1, other.code_bytes()).resolve("notes")
    with pytest.raises(ContractLoadError, match="is not in the ledger"):
        _registry(chain, v1, None).resolve("notes")
    with pytest.raises(ContractLoadError, match="malformed"):
        _registry(chain, v1, b"\x90").resolve("notes")
    registry = _registry(chain, v1, v1.code_bytes())
    first = registry.resolve("notes")
    assert first is not None and registry.resolve("notes") is first  # loaded once per hash
    assert registry.resolve("missing") is None
