"""Reading a channel's versioned world state and key history.

State: ``(namespace, key) -> (value, version)`` where version = (block, tx index) of the write
that produced the value (the MVCC version Fabric's validator compares read sets against). A
deleted key is absent: its version is ``None``, as for a key never written.

History: one entry per write of a VALID transaction, ``(namespace, key, version) -> tx id ‖
flags``. Values are not copied into the history keyspace; an entry's value is read back from the
block that wrote it (only that transaction's read/write set is parsed), as Fabric's history
database does.

This module must never write to the database and never return a value whose stored form fails
its shape checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage import keys
from storage.blockstore import BlockStore
from storage.errors import CorruptionError, StorageError
from storage.model import Version

__all__ = ["NS_PREFIX_CACHE_MAX", "HistoryEntry", "StateStore"]

# Namespace -> key prefix, so the MVCC hot path does not re-encode the namespace for every read.
# Namespaces are contract names: a channel has tens of them; 1024 bounds a hostile caller.
NS_PREFIX_CACHE_MAX = 1024


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    version: Version
    tx_id: bytes
    value: bytes | None  # None for a delete
    is_delete: bool


class StateStore:
    """Checked reads of one channel's world state and history (``cp`` is the channel prefix)."""

    def __init__(self, raw: Any, cp: bytes, blocks: BlockStore) -> None:
        self._raw = raw
        self._cp = cp
        self._blocks = blocks
        self._ns: dict[str, bytes] = {}

    def ns_prefix(self, ns: str) -> bytes:
        p = self._ns.get(ns)
        if p is None:
            p = keys.ns_prefix(self._cp, ns)
            if len(self._ns) >= NS_PREFIX_CACHE_MAX:
                self._ns.clear()
            self._ns[ns] = p
        return p

    def get_state(self, ns: str, key: str) -> tuple[bytes, Version] | None:
        raw = self._raw.get(self.ns_prefix(ns) + key.encode("utf-8"))
        if raw is None:
            return None
        return raw[keys.VERSION_LEN :], keys.unpack_version(raw)

    def get_version(self, ns: str, key: str) -> Version | None:
        raw = self._raw.get(self.ns_prefix(ns) + key.encode("utf-8"))
        if raw is None:
            return None
        return keys.unpack_version(raw)

    def get_range(self, ns: str, start: str, end: str, limit: int | None = None) -> list[tuple[str, bytes, Version]]:
        if limit is not None and limit < 0:
            raise StorageError("limit must be non-negative")
        prefix = self.ns_prefix(ns)
        lo = prefix + start.encode("utf-8")
        hi = prefix + end.encode("utf-8") if end else keys.prefix_end(prefix)
        out: list[tuple[str, bytes, Version]] = []
        if limit == 0 or (end and end <= start):
            return out
        n = len(prefix)
        with self._raw.iterator(start=lo, stop=hi) as it:
            for k, v in it:
                try:
                    key = k[n:].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise CorruptionError(f"state key in {ns!r} is not UTF-8") from exc
                out.append((key, v[keys.VERSION_LEN :], keys.unpack_version(v)))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def get_history(self, ns: str, key: str, limit: int | None = None) -> list[HistoryEntry]:
        if limit is not None and limit < 0:
            raise StorageError("limit must be non-negative")
        prefix = keys.history_prefix(self._cp, ns, key)
        out: list[HistoryEntry] = []
        if limit == 0:
            return out
        n = len(prefix)
        with self._raw.iterator(prefix=prefix) as it:
            for k, v in it:
                if len(k) != n + keys.VERSION_LEN or len(v) != keys.HASH_LEN + 1:
                    raise CorruptionError(f"history entry of {ns!r}/{key!r} has a bad shape")
                version = keys.unpack_version(k[n:])
                tx_id, is_delete = v[: keys.HASH_LEN], bool(v[keys.HASH_LEN] & keys.HISTORY_DELETE)
                value = None if is_delete else self._written_value(ns, key, version)
                out.append(HistoryEntry(version, tx_id, value, is_delete))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def _written_value(self, ns: str, key: str, version: Version) -> bytes:
        b, i = version
        writes = self._blocks.rwset_writes(b, i, ns)
        value: bytes | None = None
        found = False
        for w in writes or ():  # the last write of the key in the tx is the one that took effect
            if w[0] == key:
                value, found = w[1], True
        if not found or value is None:
            raise CorruptionError(f"history of {ns!r}/{key!r} at {version} does not match its block", height=b)
        return value
