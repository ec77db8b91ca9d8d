"""The deterministic stub: the only window a contract has onto the ledger and the request.

A contract runs on an endorser against *committed* state. The stub records what it reads (the
committed version of each key, or ``None`` when absent) and buffers what it would write; the
result is a :class:`storage.model.ReadWriteSet` that validators later check against the state at
commit time (MVCC). As in Fabric there is **no read-your-writes**: ``get_state`` after
``put_state`` of the same key still returns the committed value, because the write only exists
once the transaction commits. Range scans are recorded whole (keys and versions) so validation can
re-run them and detect phantoms; history reads are not recorded (history is append-only and not
protected by MVCC, as in Fabric).

Everything a contract sees is deterministic: committed state, the proposal's canonical args and
transient map, the creator's identity, the tx id and ``last_block_time_ms``: the timestamp (set by
the ordering leader) of the latest block the endorser had committed when it ran the proposal. It
is *not* the time of the block the transaction will land in: under execute-order-validate that
block does not exist yet when the contract runs. Block times never decrease, so the
transaction's own block time is at or after ``last_block_time_ms``; every endorser of a policy
must have the same tip for their results to match. Contracts must not read the wall clock, use randomness, floats,
threads, I/O or global mutable state: two endorsers running the same proposal on the same state
must produce byte-identical read/write sets, or their endorsements cannot be combined. Python
cannot enforce that; the stub refuses what it can (floats in values, bad keys, oversized data).

This module never reads the clock, never writes to the ledger and never lets a contract see
uncommitted data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from crypto.encoding import EncodingError, decode, encode
from storage.model import KVRead, KVWrite, RangeRead, ReadWriteSet, Version

__all__ = [
    "MAX_EVENTS",
    "MAX_EVENT_BYTES",
    "MAX_HISTORY",
    "MAX_KEY_BYTES",
    "MAX_RANGE_KEYS",
    "MAX_READS",
    "MAX_VALUE_BYTES",
    "MAX_WRITES",
    "Caller",
    "ContractError",
    "ReadOnlyViolation",
    "StateReader",
    "Stub",
    "check_key",
]

# A key names one record; 512 bytes fits composite keys (type/id/sub-id) with room to spare and
# keeps index keys in LevelDB short.
MAX_KEY_BYTES = 512
# One value is one record (a dict of metadata, a hash, a wrapped key); bulk data lives off chain.
# 1 MiB keeps a single transaction far below the block size limit (BatchConfig.absolute_max_bytes).
MAX_VALUE_BYTES = 1024 * 1024
# Keys read and written by one transaction. Real contracts touch a handful; the bounds keep one
# proposal from producing a read/write set that dominates a block.
MAX_READS = 4096
MAX_WRITES = 4096
# Keys returned by all range scans of one transaction together (Fabric bounds these with
# totalQueryLimit). Validation re-runs each scan, so this also bounds validation work.
MAX_RANGE_KEYS = 10_000
# History entries one get_history call returns (oldest first): an audit view, not a bulk export.
MAX_HISTORY = 1000
# Events per transaction and bytes per event payload: events are notifications, not data.
MAX_EVENTS = 16
MAX_EVENT_BYTES = 64 * 1024


class ContractError(Exception):
    """Raised by a contract for a business error: maps to a 4xx response with this message."""

    def __init__(self, message: str, status: int = 400) -> None:
        if not 400 <= status <= 499:
            raise ValueError(f"contract error status must be 4xx, got {status}")
        super().__init__(message)
        self.message = message
        self.status = status


class ReadOnlyViolation(Exception):
    """A query function tried to write: a bug in the contract (maps to 500)."""


class StateReader(Protocol):
    """The committed-state reads the stub needs (``storage.ledger.ChannelLedger`` provides them)."""

    def get_state(self, ns: str, key: str) -> tuple[bytes, Version] | None: ...

    def get_range(
        self, ns: str, start: str, end: str, limit: int | None = None
    ) -> list[tuple[str, bytes, Version]]: ...

    def get_history(self, ns: str, key: str, limit: int | None = None) -> list[Any]: ...


def check_key(key: object) -> str:
    """Return ``key`` if it is a valid state key (non-empty str, no NUL, bounded); else raise."""
    if not isinstance(key, str):
        raise ContractError(f"key must be a string, got {type(key).__name__}")
    if not key:
        raise ContractError("key must not be empty")
    if "\x00" in key:
        raise ContractError("key must not contain NUL")
    if len(key) > MAX_KEY_BYTES:
        raise ContractError(f"key longer than {MAX_KEY_BYTES} bytes")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ContractError("key must be valid Unicode (no lone surrogates)") from exc
    if size > MAX_KEY_BYTES:
        raise ContractError(f"key longer than {MAX_KEY_BYTES} bytes")
    return key


def _check_bytes(value: object, limit: int, what: str) -> bytes:
    if type(value) is not bytes:
        raise ContractError(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) > limit:
        raise ContractError(f"{what} of {len(value)} bytes exceeds {limit}")
    return value


@dataclass(frozen=True, slots=True)
class Caller:
    """Who created the proposal, as the MSP validated it."""

    org: str
    role: str
    name: str
    cert: bytes = field(repr=False)

    @property
    def id(self) -> str:
        return f"{self.org}/{self.name}"


class Stub:
    """One simulation's view of the ledger. Create one per proposal; never reuse."""

    def __init__(
        self,
        state: StateReader,
        namespace: str,
        *,
        tx_id: bytes,
        caller: Caller,
        last_block_time_ms: int,
        args: tuple[Any, ...],
        transient: Mapping[str, bytes] | None = None,
        read_only: bool = False,
    ) -> None:
        self._state = state
        self.namespace = namespace
        self.tx_id = tx_id
        self.caller = caller
        self.last_block_time_ms = last_block_time_ms
        self.args = args
        self.transient: Mapping[str, bytes] = dict(transient or {})
        self.read_only = read_only
        self._reads: dict[str, Version | None] = {}
        self._writes: dict[str, bytes | None] = {}
        self._ranges: list[RangeRead] = []
        self._range_keys = 0
        self._events: list[tuple[str, bytes]] = []

    @property
    def block_timestamp_ms(self) -> int:
        """The same value as :attr:`last_block_time_ms` (its earlier name): the latest committed
        block's time when the proposal was simulated, not the transaction's own block time."""
        return self.last_block_time_ms

    # ---- reads ------------------------------------------------------------------------------

    def get_state(self, key: str) -> bytes | None:
        """The committed value of ``key`` (never this transaction's own writes), or ``None``."""
        check_key(key)
        got = self._state.get_state(self.namespace, key)
        version = None if got is None else got[1]
        if key not in self._reads:
            if len(self._reads) >= MAX_READS:
                raise ContractError(f"more than {MAX_READS} keys read in one transaction")
            self._reads[key] = version
        return None if got is None else got[0]

    def get_range(self, start: str, end: str) -> list[tuple[str, bytes]]:
        """Committed ``(key, value)`` with ``start <= key < end`` in key order; ``end=""``: no bound."""
        check_key(start)
        if end != "":
            check_key(end)
        budget = MAX_RANGE_KEYS - self._range_keys
        rows = self._state.get_range(self.namespace, start, end, budget + 1)
        if len(rows) > budget:
            raise ContractError(f"range scans returned more than {MAX_RANGE_KEYS} keys in one transaction")
        self._range_keys += len(rows)
        self._ranges.append(RangeRead(start, end, tuple(KVRead(k, v) for k, _val, v in rows)))
        return [(k, val) for k, val, _v in rows]

    def get_history(self, key: str, limit: int = MAX_HISTORY) -> list[Any]:
        """The key's committed history, oldest first, at most ``limit`` (<= MAX_HISTORY) entries.

        Not recorded in the read set: history is append-only and not protected by MVCC.
        """
        check_key(key)
        if type(limit) is not int or not 0 < limit <= MAX_HISTORY:
            raise ContractError(f"history limit must be 1..{MAX_HISTORY}")
        return list(self._state.get_history(self.namespace, key, limit))

    def get_value(self, key: str) -> Any:
        """``get_state`` decoded from the canonical encoding; ``None`` when absent."""
        raw = self.get_state(key)
        if raw is None:
            return None
        try:
            return decode(raw)
        except EncodingError as exc:
            raise ContractError(f"stored value of {key!r} is not canonically encoded: {exc}", 409) from exc

    # ---- writes -----------------------------------------------------------------------------

    def _write(self, key: str, value: bytes | None) -> None:
        if self.read_only:
            raise ReadOnlyViolation(f"a query function wrote key {key!r}")
        check_key(key)
        if key not in self._writes and len(self._writes) >= MAX_WRITES:
            raise ContractError(f"more than {MAX_WRITES} keys written in one transaction")
        self._writes[key] = value

    def put_state(self, key: str, value: bytes) -> None:
        """Write ``value`` at ``key`` when the transaction commits (the last write of a key wins)."""
        self._write(key, _check_bytes(value, MAX_VALUE_BYTES, "value"))

    def del_state(self, key: str) -> None:
        """Delete ``key`` when the transaction commits."""
        self._write(key, None)

    def put_value(self, key: str, obj: Any) -> None:
        """``put_state`` of the canonical encoding of ``obj`` (floats and other non-canonical types refused)."""
        try:
            data = encode(obj)
        except EncodingError as exc:
            raise ContractError(f"value for {key!r} cannot be encoded canonically: {exc}") from exc
        self.put_state(key, data)

    def set_event(self, name: str, payload: bytes = b"") -> None:
        """Emit an event delivered to subscribers if the transaction commits valid."""
        if not isinstance(name, str) or not name or len(name) > 256:
            raise ContractError("event name must be a non-empty string of at most 256 characters")
        _check_bytes(payload, MAX_EVENT_BYTES, "event payload")
        if len(self._events) >= MAX_EVENTS:
            raise ContractError(f"more than {MAX_EVENTS} events in one transaction")
        self._events.append((name, payload))

    # ---- results ----------------------------------------------------------------------------

    @property
    def events(self) -> tuple[tuple[str, bytes], ...]:
        return tuple(self._events)

    def rwset(self) -> ReadWriteSet:
        """What the simulation read and would write; reads and writes sorted by key."""
        return ReadWriteSet(
            self.namespace,
            tuple(KVRead(k, self._reads[k]) for k in sorted(self._reads)),
            tuple(KVWrite(k, self._writes[k]) for k in sorted(self._writes)),
            tuple(self._ranges),
        )
