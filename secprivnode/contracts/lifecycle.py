"""The contract lifecycle: definitions that name packaged code, and loading that code from the ledger.

Anchored on Hyperledger Fabric's chaincode lifecycle (package → approve by the organisations →
commit the definition), adapted to this node (``docs/lifecycle.md`` has the whole flow):

* A :class:`~storage.model.ContractDefinition` with a ``package_hash`` names packaged code
  (:mod:`secprivnode.contracts.package`). Definitions change only through channel configuration
  updates, approved by the channel admins under the channel's admin policy.
* A configuration transaction that commits a definition whose package hash changes carries the
  package's code as a second argument; its read/write set writes the code at
  ``package/<hash hex>`` in the ``_config`` namespace (:func:`package_key`), and each new or
  changed packaged definition at ``definition/<name>`` (:func:`definition_key`). So every node gets
  the exact code through the ledger, and the admins' signatures (over the configuration, which
  holds the hash) cover it. :func:`check_definitions` is the rule the validator applies.
* :class:`LifecycleRegistry` resolves a contract name to code at the state a node runs on: the
  definition in the latest committed configuration, then the code stored under its hash, which is
  hashed again and refused if it differs, checked by the sandbox and executed once per hash.

This module never writes to the ledger and never reads the clock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol

from crypto.encoding import encode
from secprivnode.contracts.package import ContractPackage, PackageError
from secprivnode.contracts.runtime import Contract, ContractRegistry
from secprivnode.contracts.sandbox import SandboxError, check_package, load_contract
from storage.ledger import CONFIG_NAMESPACE
from storage.model import ChannelConfig, ContractDefinition, KVWrite, Version

__all__ = [
    "DEFINITION_KEY_PREFIX",
    "LOADED_CACHE_MAX",
    "PACKAGE_KEY_PREFIX",
    "ContractLoadError",
    "LifecycleError",
    "LifecycleRegistry",
    "check_definitions",
    "definition_key",
    "lifecycle_writes",
    "package_key",
    "vet_update",
]

PACKAGE_KEY_PREFIX = "package/"
DEFINITION_KEY_PREFIX = "definition/"
# Loaded contracts kept per channel, by package hash: every defined contract, plus the previous
# version of a few while an upgrade settles. A city runs about ten contracts.
LOADED_CACHE_MAX = 64


class LifecycleError(ValueError):
    """A configuration's contract definitions do not follow the lifecycle rules."""


class ContractLoadError(RuntimeError):
    """The committed code of a contract cannot be run here (missing, hash mismatch, sandbox rule)."""


def package_key(package_hash: bytes) -> str:
    """The ``_config`` state key holding the code whose hash is ``package_hash``."""
    return PACKAGE_KEY_PREFIX + package_hash.hex()


def definition_key(name: str) -> str:
    """The ``_config`` state key holding the packaged definition of contract ``name``: its version
    is the position of the transaction that last changed the definition."""
    return DEFINITION_KEY_PREFIX + name


def lifecycle_writes(previous: ChannelConfig | None, new: ChannelConfig, packages: Sequence[bytes]) -> list[KVWrite]:
    """The ``_config`` writes besides the configuration itself: each carried package's code at
    :func:`package_key`, and each packaged definition that is new, changed or removed at
    :func:`definition_key` (a removal deletes it). Sorted by key."""
    writes = [KVWrite(package_key(ContractPackage.from_code_bytes(p).hash), p) for p in packages]
    for d in new.contracts:
        if d.package_hash and (previous is None or previous.contract(d.name) != d):
            writes.append(KVWrite(definition_key(d.name), encode(d.to_obj())))
    if previous is not None:
        for old in previous.contracts:
            if old.package_hash and new.contract(old.name) is None:
                writes.append(KVWrite(definition_key(old.name), None))
    return sorted(writes, key=lambda w: w.key)


def _decode_packages(packages: Iterable[bytes]) -> dict[bytes, ContractPackage]:
    out: dict[bytes, ContractPackage] = {}
    for raw in packages:
        if type(raw) is not bytes:
            raise LifecycleError("carried packages must be bytes")
        try:
            pkg = ContractPackage.from_code_bytes(raw)
        except PackageError as exc:
            raise LifecycleError(f"carried package is invalid: {exc}") from exc
        if pkg.code_bytes() != raw:
            raise LifecycleError("carried package is not in its canonical encoding")
        if pkg.hash in out:
            raise LifecycleError(f"package {pkg.hash.hex()} is carried twice")
        out[pkg.hash] = pkg
    return out


def _expected_sequence(old: ContractDefinition | None, new: ContractDefinition) -> int:
    if old is None:
        return 1
    changed = (old.version, old.policy, old.package_hash) != (new.version, new.policy, new.package_hash)
    return old.sequence + 1 if changed else old.sequence


def check_definitions(
    current: ChannelConfig | None, new: ChannelConfig, packages: Sequence[bytes]
) -> dict[bytes, ContractPackage]:
    """The carried packages by hash, if ``new``'s definitions may follow ``current``'s; else raise.

    Rules: a definition without a package hash keeps sequence 0 (code built into the node), and a
    packaged contract never loses its package; a packaged definition has sequence 1 when new and
    one more than before whenever its version, policy or package hash changes; a definition whose
    package hash changes must carry that package, with the definition's name and version; nothing
    else may be carried.
    """
    carried = _decode_packages(packages)
    used: set[bytes] = set()
    for d in new.contracts:
        old = current.contract(d.name) if current is not None else None
        if not d.package_hash:
            if old is not None and old.package_hash:
                raise LifecycleError(f"contract {d.name!r} is packaged: a new definition must name a package too")
            if d.sequence != 0:
                raise LifecycleError(f"contract {d.name!r}: a definition without a package has sequence 0")
            continue
        expected = _expected_sequence(old, d)
        if d.sequence != expected:
            raise LifecycleError(f"contract {d.name!r}: definition sequence must be {expected}, got {d.sequence}")
        if old is not None and old.package_hash == d.package_hash:
            continue
        pkg = carried.get(d.package_hash)
        if pkg is None:
            raise LifecycleError(f"contract {d.name!r}: the update must carry package {d.package_hash.hex()}")
        if (pkg.name, pkg.version) != (d.name, d.version):
            raise LifecycleError(
                f"contract {d.name!r} {d.version}: the package is {pkg.name!r} {pkg.version}, not this definition"
            )
        used.add(d.package_hash)
    unused = sorted(h.hex() for h in set(carried) - used)
    if unused:
        raise LifecycleError(f"the update carries packages no changed definition names: {', '.join(unused)}")
    return carried


def vet_update(
    current: ChannelConfig | None, new: ChannelConfig, packages: Sequence[bytes]
) -> dict[bytes, ContractPackage]:
    """:func:`check_definitions`, and every carried package's code passes the sandbox's checks.

    What an admin's tooling and a gateway check before a definition is approved or ordered: the
    validator applies :func:`check_definitions` only, so a transaction's validity never depends
    on the Python version parsing the code; each node checks the code again when it loads it.
    """
    carried = check_definitions(current, new, packages)
    for pkg in carried.values():
        try:
            check_package(pkg)
        except SandboxError as exc:
            raise LifecycleError(
                f"package of contract {pkg.name!r} {pkg.version} breaks a sandbox rule: {exc}"
            ) from exc
    return carried


class PackageState(Protocol):
    """The committed state the registry reads (``storage.ledger.ChannelLedger`` provides it)."""

    def get_state(self, ns: str, key: str) -> tuple[bytes, Version] | None: ...

    def latest_config(self) -> ChannelConfig | None: ...


class LifecycleRegistry:
    """Contract code for one channel: system contracts from the node, the others from the ledger.

    ``resolve(name)`` answers for the latest committed state, so an upgrade takes effect at the
    block that commits it. Definitions without a package hash resolve to code installed in-process
    in ``builtins`` (the ``_config`` system contract; embedders and tests may install others).
    """

    def __init__(self, builtins: ContractRegistry, state: PackageState) -> None:
        self.builtins = builtins
        self._state = state
        self._loaded: OrderedDict[bytes, Contract] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, name: str, config: ChannelConfig | None = None) -> Contract | None:
        """The code of contract ``name`` under ``config`` (default: the latest committed one).

        ``None`` when the contract is neither a system contract nor defined with code available
        here; :class:`ContractLoadError` when its committed code cannot be run.
        """
        if name.startswith("_"):
            return self.builtins.get(name)
        cfg = config if config is not None else self._state.latest_config()
        definition = None if cfg is None else cfg.contract(name)
        if definition is None:
            return None
        if not definition.package_hash:
            return self.builtins.get(name)
        return self.load(definition)

    def load(self, definition: ContractDefinition) -> Contract:
        """The contract of a packaged definition, loaded from the ledger once per package hash."""
        h = definition.package_hash
        with self._lock:
            hit = self._loaded.get(h)
            if hit is not None:
                self._loaded.move_to_end(h)
                return hit
        contract = self._load(definition)
        with self._lock:
            self._loaded[h] = contract
            while len(self._loaded) > LOADED_CACHE_MAX:
                self._loaded.popitem(last=False)
        return contract

    def _load(self, d: ContractDefinition) -> Contract:
        got = self._state.get_state(CONFIG_NAMESPACE, package_key(d.package_hash))
        if got is None:
            raise ContractLoadError(f"package {d.package_hash.hex()} of contract {d.name!r} is not in the ledger")
        try:
            pkg = ContractPackage.from_code_bytes(got[0])
        except PackageError as exc:
            raise ContractLoadError(f"stored package of contract {d.name!r} is malformed: {exc}") from exc
        if pkg.hash != d.package_hash:
            raise ContractLoadError(
                f"stored code of contract {d.name!r} hashes to {pkg.hash.hex()}, the committed definition "
                f"names {d.package_hash.hex()}: refusing to run it"
            )
        if (pkg.name, pkg.version) != (d.name, d.version):
            raise ContractLoadError(
                f"stored package is {pkg.name!r} {pkg.version}, the definition {d.name!r} {d.version}"
            )
        try:
            return load_contract(pkg)
        except SandboxError as exc:
            raise ContractLoadError(f"contract {d.name!r} {d.version} is refused by the sandbox: {exc}") from exc
