"""Node configuration: a YAML file loaded into a frozen, validated dataclass tree.

Every option is documented in ``configs/node.example.yaml``. Relative paths in a file are resolved
against the file's directory, so a network directory can be moved as a whole. Validation happens
once, at load; the running node only ever sees a :class:`NodeConfig` it cannot change.

Errors name the offending option (``ConfigError: p2p.listen: expected host:port``).
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, get_type_hints

import yaml

from crypto.tls import TLS_VERSIONS
from secprivnode.contracts.policy import PolicyError
from secprivnode.contracts.policy import parse as policy_parse
from storage import kv
from storage.blobstore import MAX_BLOB_BYTES

__all__ = [
    "ALL_ROLES",
    "ChannelSpec",
    "ConfigError",
    "CryptoSection",
    "IdentitySection",
    "LoggingSection",
    "MemorySection",
    "NodeConfig",
    "NodeSection",
    "P2PSection",
    "RaftSection",
    "ReadPolicySpec",
    "RpcSection",
    "RpcTlsSection",
    "StorageSection",
    "load_config",
    "parse_hostport",
]

ALL_ROLES = ("orderer", "endorser", "committer", "gateway")


class ConfigError(ValueError):
    """A configuration file is missing, malformed, or has an invalid option."""


def parse_hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what}: expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class NodeSection:
    name: str  # must equal the CN of the node certificate
    org: str  # must equal the O of the node certificate
    data_dir: Path
    roles: tuple[str, ...] = ALL_ROLES

    def __post_init__(self) -> None:
        bad = set(self.roles) - set(ALL_ROLES)
        if bad:
            raise ConfigError(f"node.roles: unknown role(s) {sorted(bad)}; expected some of {list(ALL_ROLES)}")
        if "committer" not in self.roles:
            raise ConfigError("node.roles: committer is required (every node validates and keeps the channel's ledger)")


@dataclass(frozen=True)
class IdentitySection:
    cert: Path  # PEM node certificate (also the TLS certificate)
    key: Path  # PEM private key


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    genesis: Path  # the channel's genesis block (canonical bytes)


@dataclass(frozen=True)
class P2PSection:
    listen: str = "127.0.0.1:7051"
    advertise: str = ""  # address peers dial; defaults to listen
    bootstrap: tuple[str, ...] = ()  # seed peers as name@host:port (the name is the peer's certificate CN)
    network_id: str = "secprivnode"

    def __post_init__(self) -> None:
        parse_hostport(self.listen, "p2p.listen")
        if self.advertise:
            parse_hostport(self.advertise, "p2p.advertise")
        for b in self.bootstrap:
            name, at, addr = b.partition("@")
            if not at or not name:
                raise ConfigError(f"p2p.bootstrap: expected name@host:port, got {b!r}")
            parse_hostport(addr, "p2p.bootstrap")

    @property
    def advertised(self) -> str:
        return self.advertise or self.listen


@dataclass(frozen=True)
class RpcTlsSection:
    """HTTPS/WSS on the JSON-RPC and operations listeners (one block serves both)."""

    enabled: bool = False
    cert: Path | None = None  # PEM certificate; default: identity.cert (the node's own)
    key: Path | None = None  # PEM private key; default: identity.key
    client_ca: Path | None = None  # PEM CA bundle: when set, clients must present a certificate it issued
    min_version: str = "1.2"  # 1.2 or 1.3

    def __post_init__(self) -> None:
        if self.min_version not in TLS_VERSIONS:
            raise ConfigError(f"rpc.tls.min_version: expected one of {sorted(TLS_VERSIONS)}, got {self.min_version!r}")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("rpc.tls: cert and key go together (omit both to use the node identity)")
        if not self.enabled and (self.cert is not None or self.client_ca is not None):
            raise ConfigError("rpc.tls: cert, key and client_ca need enabled: true")


@dataclass(frozen=True)
class ReadPolicySpec:
    """Who may read a namespace's state directly (state_get, state_getRange, state_getHistory)."""

    namespace: str
    policy: str  # a policy expression, satisfied by the one reader (see secprivnode/contracts/policy.py)

    def __post_init__(self) -> None:
        if not self.namespace:
            raise ConfigError("rpc.read_policies: namespace must not be empty")
        try:
            policy_parse(self.policy)
        except PolicyError as exc:
            raise ConfigError(f"rpc.read_policies[{self.namespace}]: {exc}") from None


@dataclass(frozen=True)
class RpcSection:
    listen: str = "127.0.0.1:8545"
    operations_listen: str = "127.0.0.1:9443"
    max_body_bytes: int = 4 * 1024 * 1024
    max_batch: int = 100
    # Largest blob PUT /blobs accepts (and this node pulls from peers): city documents and scans
    # are tens of MB; the blob store's own ceiling (storage.blobstore.MAX_BLOB_BYTES) caps it.
    max_blob_bytes: int = 64 * 1024 * 1024
    tls: RpcTlsSection = field(default_factory=RpcTlsSection)
    read_policies: tuple[ReadPolicySpec, ...] = ()  # namespaces not listed use the default policy

    def __post_init__(self) -> None:
        if not 0 < self.max_blob_bytes <= MAX_BLOB_BYTES:
            raise ConfigError(f"rpc.max_blob_bytes must be 1..{MAX_BLOB_BYTES}")
        parse_hostport(self.listen, "rpc.listen")
        parse_hostport(self.operations_listen, "rpc.operations_listen")
        names = [p.namespace for p in self.read_policies]
        if len(set(names)) != len(names):
            raise ConfigError("rpc.read_policies: a namespace is listed twice")


@dataclass(frozen=True)
class RaftSection:
    tick_ms: int = 100
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    snapshot_interval_blocks: int = 1000  # Raft log compaction: a snapshot every this many blocks

    def __post_init__(self) -> None:
        if self.tick_ms <= 0 or self.heartbeat_ticks <= 0 or self.election_ticks <= self.heartbeat_ticks:
            raise ConfigError("raft: need tick_ms > 0 and election_ticks > heartbeat_ticks > 0")


@dataclass(frozen=True)
class CryptoSection:
    backend: str = "native"  # native (OpenSSL) or pure (python-ecdsa)
    verify_workers: int = 0  # processes for batch signature verification; 0 = in-process only

    def __post_init__(self) -> None:
        if self.backend not in ("native", "pure"):
            raise ConfigError(f"crypto.backend: expected native or pure, got {self.backend!r}")
        if self.verify_workers < 0:
            raise ConfigError("crypto.verify_workers: must be >= 0")


@dataclass(frozen=True)
class StorageSection:
    """LevelDB's memory: the node's largest native allocations that a setting bounds."""

    block_cache_bytes: int = kv.BLOCK_CACHE_BYTES  # LevelDB block (read) cache
    write_buffer_bytes: int = kv.WRITE_BUFFER_BYTES  # memtable size; LevelDB keeps up to two
    max_open_files: int = kv.MAX_OPEN_FILES  # table files kept open, each with its index and filter

    def __post_init__(self) -> None:
        try:
            kv.check_cache_options(self.block_cache_bytes, self.write_buffer_bytes, self.max_open_files)
        except ValueError as exc:
            raise ConfigError(f"storage.{exc}") from None


@dataclass(frozen=True)
class MemorySection:
    """The C allocator. Pinning bounds the node's RSS at a CPU cost (see secprivnode/memory.py)."""

    pin_malloc: bool = True  # glibc only: fixed mmap/trim thresholds and at most two arenas


@dataclass(frozen=True)
class LoggingSection:
    level: str = "info"
    format: str = "text"  # text or json (one JSON object per line)

    def __post_init__(self) -> None:
        if self.level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"logging.level: unknown level {self.level!r}")
        if self.format not in ("text", "json"):
            raise ConfigError(f"logging.format: expected text or json, got {self.format!r}")


@dataclass(frozen=True)
class NodeConfig:
    node: NodeSection
    identity: IdentitySection
    channels: tuple[ChannelSpec, ...]
    p2p: P2PSection = field(default_factory=P2PSection)
    rpc: RpcSection = field(default_factory=RpcSection)
    raft: RaftSection = field(default_factory=RaftSection)
    crypto: CryptoSection = field(default_factory=CryptoSection)
    storage: StorageSection = field(default_factory=StorageSection)
    memory: MemorySection = field(default_factory=MemorySection)
    logging: LoggingSection = field(default_factory=LoggingSection)

    def __post_init__(self) -> None:
        if not self.channels:
            raise ConfigError("channels: at least one channel is required")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ConfigError("channels: duplicate channel names")

    @property
    def default_channel(self) -> str:
        return self.channels[0].name

    def has_role(self, role: str) -> bool:
        return role in self.node.roles


T = TypeVar("T")


def _build(cls: type[T], data: Any, where: str, base: Path) -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown option(s) {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        path = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name], path, base)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        missing = [f.name for f in fields(cls) if f.name not in kwargs]  # type: ignore[arg-type]
        raise ConfigError(f"{where or 'config'}: missing required option(s) {missing}") from exc


def _convert(tp: Any, value: Any, path: str, base: Path) -> Any:
    origin = getattr(tp, "__origin__", None)
    if (origin is Union or isinstance(tp, types.UnionType)) and type(None) in tp.__args__:
        if value is None:
            return None
        (inner,) = (a for a in tp.__args__ if a is not type(None))
        return _convert(inner, value, path, base)
    if is_dataclass(tp):
        return _build(tp, value, path, base)  # type: ignore[arg-type]
    if origin is tuple:
        (item,) = {a for a in tp.__args__ if a is not Ellipsis}
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list")
        return tuple(_convert(item, v, f"{path}[{i}]", base) for i, v in enumerate(value))
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: expected a path")
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(os.path.normpath(base / p))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer")
        return value
    if tp is str:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(f"{path}: expected a string")
        return str(value)
    raise ConfigError(f"{path}: unsupported option type")  # pragma: no cover - schema bug


def config_from_mapping(data: Mapping[str, Any], base: Path) -> NodeConfig:
    return _build(NodeConfig, data, "", base)


def load_config(path: str | Path) -> NodeConfig:
    """Load and validate a node configuration file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    try:
        return config_from_mapping(data or {}, p.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
