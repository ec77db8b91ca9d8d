"""The system contract ``_config``: channel configuration as ledger state, and its rules.

The channel's configuration is the value of key ``"channel"`` in namespace ``"_config"``: the
canonical encoding of :meth:`storage.model.ChannelConfig.to_obj`. It changes only through a
config transaction: ``_config.update(config_obj)``, whose read/write set reads the current version
of that key and writes the new encoding. A transaction that commits contract definitions with new
packages carries their code as a second argument, ``_config.update(config_obj, [code, ...])``,
and also writes each at ``package/<hash hex>`` (see :mod:`secprivnode.contracts.lifecycle`).
Such a transaction is not endorsed by nodes: channel admins each sign
:func:`storage.model.config_update_digest` of the new config, and those signatures travel as
the transaction's endorsements (:mod:`secprivnode.genesis` builds such transactions and the
genesis block). Validators accept it when the sequence is the current one plus one, the admins
satisfy the *current* ``admin_policy`` and the new config is well-formed (:func:`check_config`).
The genesis block's config (sequence 0) is trusted as given.

This module also derives the channel MSP from a config (:func:`msp_from_config`, cached).
It never reads the clock and never writes to the ledger itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from crypto.encoding import EncodingError, decode, encode
from crypto.msp import MSP, IdentityError, OrgMSP
from secprivnode.contracts.lifecycle import LifecycleError, check_definitions, lifecycle_writes
from secprivnode.contracts.policy import Policy, PolicyError, parse
from secprivnode.contracts.runtime import Contract, transaction
from secprivnode.contracts.stub import ContractError, Stub
from storage.ledger import CONFIG_KEY, CONFIG_NAMESPACE
from storage.model import CONFIG_CONTRACT, ChannelConfig, KVRead, KVWrite, MalformedError, ReadWriteSet, Version

__all__ = [
    "CONFIG_KEY",
    "CONFIG_NAMESPACE",
    "MAX_COLLECTIONS",
    "MSP_CACHE_MAX",
    "ConfigContract",
    "ConfigError",
    "admin_policy",
    "check_config",
    "config_rwset",
    "contract_policy",
    "decode_config",
    "msp_from_config",
]

UPDATE_FUNCTION = "update"
# MSPs kept for recent configs. A node needs the current one and, while a config block is being
# validated, the next; a few more cover several channels.
MSP_CACHE_MAX = 8


class ConfigError(ValueError):
    """A channel configuration is malformed or not acceptable as the next one."""


def decode_config(obj: Any) -> ChannelConfig:
    try:
        return ChannelConfig.from_obj(obj)
    except (MalformedError, EncodingError, TypeError, ValueError) as exc:
        raise ConfigError(f"malformed channel config: {exc}") from exc


def _org_names(cfg: ChannelConfig) -> list[str]:
    return [o.name for o in cfg.orgs]


def admin_policy(cfg: ChannelConfig) -> Policy:
    return parse(cfg.admin_policy, _org_names(cfg))


def contract_policy(cfg: ChannelConfig, name: str) -> Policy | None:
    """The endorsement policy of contract ``name`` in ``cfg``, or ``None`` if it is not defined."""
    definition = cfg.contract(name)
    return None if definition is None else parse(definition.policy, _org_names(cfg))


def check_config(cfg: ChannelConfig, *, channel: str | None = None) -> None:
    """Raise :class:`ConfigError` unless ``cfg`` is a well-formed channel configuration."""
    if channel is not None and cfg.channel != channel:
        raise ConfigError(f"config is for channel {cfg.channel!r}, not {channel!r}")
    if not cfg.channel or "\x00" in cfg.channel:
        raise ConfigError("channel name must be non-empty")
    if cfg.sequence < 0:
        raise ConfigError("sequence must not be negative")
    names = _org_names(cfg)
    if not names:
        raise ConfigError("config must list at least one organisation")
    if len(set(names)) != len(names):
        raise ConfigError("organisations must have distinct names")
    try:
        msp_from_config(cfg)
    except (IdentityError, ValueError) as exc:
        raise ConfigError(f"organisation MSP material is invalid: {exc}") from exc
    node_names = [n.name for n in cfg.nodes]
    if len(set(node_names)) != len(node_names):
        raise ConfigError("nodes must have distinct names")
    for n in cfg.nodes:
        if n.org not in names:
            raise ConfigError(f"node {n.name!r} belongs to unknown organisation {n.org!r}")
    if not cfg.orderers():
        raise ConfigError("config must name at least one orderer node")
    b = cfg.batch
    if b.preferred_max_bytes > b.absolute_max_bytes:
        raise ConfigError("batch preferred_max_bytes exceeds absolute_max_bytes")
    try:
        policy = admin_policy(cfg)
    except PolicyError as exc:
        raise ConfigError(f"admin policy: {exc}") from exc
    _check_principals(policy, names, "admin policy", role="admin")
    contract_names = [c.name for c in cfg.contracts]
    if len(set(contract_names)) != len(contract_names):
        raise ConfigError("contracts must have distinct names")
    for c in cfg.contracts:
        if not c.name or c.name.startswith("_") or "\x00" in c.name:
            raise ConfigError(f"contract name {c.name!r} is reserved or empty (names starting with _ are system)")
        try:
            p = parse(c.policy, names)
        except PolicyError as exc:
            raise ConfigError(f"policy of contract {c.name!r}: {exc}") from exc
        _check_principals(p, names, f"policy of contract {c.name!r}")
    _check_collections(cfg, names)


# Collections per channel: a contract has a handful (per-org, per-pair); the bound keeps the
# config and the gossip collection map small.
MAX_COLLECTIONS = 256


def _check_collections(cfg: ChannelConfig, orgs: Sequence[str]) -> None:
    if len(cfg.collections) > MAX_COLLECTIONS:
        raise ConfigError(f"more than {MAX_COLLECTIONS} collections")
    seen: set[tuple[str, str]] = set()
    for c in cfg.collections:
        what = f"collection {c.contract}/{c.name}"
        if (c.contract, c.name) in seen:
            raise ConfigError(f"{what} is defined twice")
        seen.add((c.contract, c.name))
        if cfg.contract(c.contract) is None:
            raise ConfigError(f"{what} belongs to undefined contract {c.contract!r}")
        if not c.name or "/" in c.name or "\x00" in c.name or len(c.name) > 64:
            raise ConfigError(f"{what}: a name is 1..64 characters without '/' or NUL")
        if not c.member_orgs or len(set(c.member_orgs)) != len(c.member_orgs):
            raise ConfigError(f"{what} must name at least one member organisation, each once")
        unknown = sorted(set(c.member_orgs) - set(orgs))
        if unknown:
            raise ConfigError(f"{what} names unknown organisations {unknown}")
        members = sum(1 for n in cfg.nodes if n.org in c.member_orgs)
        if c.max_peers < c.required_peers:
            raise ConfigError(f"{what}: max_peers {c.max_peers} is below required_peers {c.required_peers}")
        if c.required_peers > max(members - 1, 0):
            raise ConfigError(
                f"{what}: required_peers {c.required_peers} exceeds the {max(members - 1, 0)} other member nodes"
            )


def _check_principals(policy: Policy, orgs: Sequence[str], what: str, role: str | None = None) -> None:
    for pr in policy.principals():
        if pr.org not in orgs:
            raise ConfigError(f"{what} names unknown organisation {pr.org!r}")
        if role is not None and pr.role != role:
            raise ConfigError(f"{what} must use only '<org>.{role}' principals, found {pr}")


_msp_cache: OrderedDict[ChannelConfig, MSP] = OrderedDict()
_msp_lock = threading.Lock()


def msp_from_config(cfg: ChannelConfig) -> MSP:
    """The MSP of ``cfg``'s organisations (cached: configs are immutable values)."""
    with _msp_lock:
        hit = _msp_cache.get(cfg)
        if hit is not None:
            _msp_cache.move_to_end(cfg)
            return hit
    msp = MSP(OrgMSP(o.name, o.ca_cert, o.crls) for o in cfg.orgs)
    with _msp_lock:
        _msp_cache[cfg] = msp
        while len(_msp_cache) > MSP_CACHE_MAX:
            _msp_cache.popitem(last=False)
    return msp


class ConfigContract(Contract):
    """``_config.update(config_obj)``: checks sequence and shape; writes the new config."""

    name = CONFIG_CONTRACT

    @transaction
    def update(self, stub: Stub, config_obj: Any, packages: Sequence[bytes] = ()) -> None:
        try:
            new = decode_config(config_obj)
            raw = stub.get_state(CONFIG_KEY)
            current = None if raw is None else decode_config(decode(raw))
            expected = 0 if current is None else current.sequence + 1
            if new.sequence != expected:
                raise ConfigError(f"config sequence must be {expected}, got {new.sequence}")
            check_config(new, channel=None if current is None else current.channel)
            check_definitions(current, new, packages)
        except (ConfigError, LifecycleError) as exc:
            raise ContractError(str(exc)) from exc
        stub.put_state(CONFIG_KEY, encode(new.to_obj()))
        for w in lifecycle_writes(current, new, packages):
            if w.value is None:
                stub.del_state(w.key)
            else:
                stub.put_state(w.key, w.value)


def config_rwset(
    config: ChannelConfig,
    read_version: Version | None,
    packages: Sequence[bytes] = (),
    previous: ChannelConfig | None = None,
) -> ReadWriteSet:
    """The read/write set of a config transaction replacing ``previous`` (``None``: genesis) and
    carrying ``packages`` (encoded package code), as :class:`ConfigContract` and
    :func:`secprivnode.genesis.config_transaction` produce it."""
    writes = [KVWrite(CONFIG_KEY, encode(config.to_obj())), *lifecycle_writes(previous, config, packages)]
    return ReadWriteSet(
        CONFIG_NAMESPACE,
        (KVRead(CONFIG_KEY, read_version),),
        tuple(sorted(writes, key=lambda w: w.key)),
    )
