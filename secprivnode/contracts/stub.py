"""The deterministic stub: the only window a contract has onto the ledger and the request.

A contract runs on an endorser against *committed* state. The stub records what it reads (the
committed version of each key, or ``None`` when absent) and buffers what it would write; the
result is a :class:`storage.model.ReadWriteSet` that validators later check against the state at
commit time (MVCC). As in Fabric there is **no read-your-writes**: ``get_state`` after
``put_state`` of the same key still returns the committed value, because the write only exists
once the transaction commits. Range scans are recorded whole (keys and versions) so validation can
re-run them and detect phantoms; history reads are not recorded (history is append-only and not
protected by MVCC, as in Fabric).

A contract may call another contract's function inside the same transaction
(:meth:`Stub.invoke_contract`, as Fabric's chaincode-to-chaincode invocation): the callee runs on
the same committed state with a stub of its own namespace, under the same caller, and what it reads
and writes is recorded in a read/write set of its own namespace. The transaction then carries one
read/write set per namespace, validated (MVCC, endorsement policy of every namespace written) and
committed together: both namespaces commit or neither does.

Private collections (:meth:`Stub.put_private`, :meth:`Stub.get_private`, :meth:`Stub.del_private`,
as Fabric's private data) work on a member organisation's node only: the namespace's read/write
set records the hashes of the private keys read (with their versions) and of the keys and values
written, and the plaintext writes come out separately (:meth:`Stub.private_write_sets`) for the
node to keep and disseminate; they never enter a read/write set.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from crypto.encoding import EncodingError, decode, encode
from storage.model import CollectionHashes, HashedRead, HashedWrite, KVRead, KVWrite, RangeRead, ReadWriteSet, Version
from storage.privstate import WriteSet, key_hash, value_hash

__all__ = [
    "MAX_CALL_DEPTH",
    "MAX_EVENTS",
    "MAX_EVENT_BYTES",
    "MAX_HISTORY",
    "MAX_KEY_BYTES",
    "MAX_NAMESPACES",
    "MAX_RANGE_KEYS",
    "MAX_READS",
    "MAX_VALUE_BYTES",
    "MAX_WRITES",
    "Caller",
    "ContractError",
    "Invoker",
    "PrivateReader",
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
# Nested contract calls in one transaction. An application's contracts call one or two others (access
# control reads the user registry and the key directory, then writes an audit entry); the bound
# stops call cycles between contracts from running until the interpreter's recursion limit.
MAX_CALL_DEPTH = 8
# Namespaces one transaction may read or write (the called contract's and its callees'): each is
# one more read/write set to MVCC-check and one more endorsement policy to satisfy.
MAX_NAMESPACES = 16


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


class PrivateReader(Protocol):
    """Private state as this node holds it (``secprivnode.pipeline.privdata`` provides it)."""

    def check_collection(self, ns: str, collection: str) -> None:
        """Raise ContractError unless ``collection`` of ``ns`` exists and this node's org is a member."""
        ...

    def get_private(self, ns: str, collection: str, key: str) -> tuple[bytes, Version] | None: ...


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


def _by_hash(x: HashedRead | HashedWrite) -> bytes:
    return x.key_hash


class _Recording:
    """What one simulation read and would write, per namespace, and the events it emitted: shared
    by the stubs of the contract a proposal called and of the contracts that one called."""

    __slots__ = ("events", "pvt_reads", "pvt_writes", "range_keys", "ranges", "reads", "writes")

    def __init__(self) -> None:
        self.reads: dict[str, dict[str, Version | None]] = {}
        self.writes: dict[str, dict[str, bytes | None]] = {}
        self.ranges: dict[str, list[RangeRead]] = {}
        self.range_keys = 0  # keys returned by all range scans, in every namespace
        self.events: list[tuple[str, bytes]] = []
        # Private collections: (namespace, collection) -> key -> version / value.
        self.pvt_reads: dict[tuple[str, str], dict[str, Version | None]] = {}
        self.pvt_writes: dict[tuple[str, str], dict[str, bytes | None]] = {}

    def rwset(self, ns: str) -> ReadWriteSet:
        reads, writes = self.reads.get(ns, {}), self.writes.get(ns, {})
        return ReadWriteSet(
            ns,
            tuple(KVRead(k, reads[k]) for k in sorted(reads)),
            tuple(KVWrite(k, writes[k]) for k in sorted(writes)),
            tuple(self.ranges.get(ns, ())),
            self.collection_hashes(ns),
        )

    def collection_hashes(self, ns: str) -> tuple[CollectionHashes, ...]:
        """The hashed private reads and writes of ``ns``, by collection name."""
        names = sorted({c for n, c in self.pvt_reads if n == ns} | {c for n, c in self.pvt_writes if n == ns})
        out = []
        for c in names:
            pr, pw = self.pvt_reads.get((ns, c), {}), self.pvt_writes.get((ns, c), {})
            reads = sorted((HashedRead(key_hash(k), v) for k, v in pr.items()), key=_by_hash)
            writes = sorted(
                (HashedWrite(key_hash(k), None if v is None else value_hash(v)) for k, v in pw.items()), key=_by_hash
            )
            if reads or writes:
                out.append(CollectionHashes(c, tuple(reads), tuple(writes)))
        return tuple(out)

    def has_private(self, ns: str) -> bool:
        return any(n == ns and r for (n, _c), r in self.pvt_reads.items()) or any(
            n == ns and w for (n, _c), w in self.pvt_writes.items()
        )

    def snapshot(
        self,
    ) -> tuple[dict[str, dict[str, bytes | None]], int, dict[tuple[str, str], dict[str, bytes | None]]]:
        pvt = {k: dict(w) for k, w in self.pvt_writes.items()}
        return {ns: dict(w) for ns, w in self.writes.items()}, len(self.events), pvt

    def restore(
        self, snap: tuple[dict[str, dict[str, bytes | None]], int, dict[tuple[str, str], dict[str, bytes | None]]]
    ) -> None:
        """Drop the writes and events made since ``snap`` (reads stay: they only add checks)."""
        writes, n_events, pvt = snap
        for ns, w in self.writes.items():
            w.clear()
            w.update(writes.get(ns, {}))
        for k, pw in self.pvt_writes.items():
            pw.clear()
            pw.update(pvt.get(k, {}))
        del self.events[n_events:]


# Runs ``function(*args)`` of contract ``name`` for the calling stub (see secprivnode.contracts.runtime).
Invoker = Callable[["Stub", str, str, tuple[Any, ...]], bytes]


class Stub:
    """One contract call's view of the ledger. Create one per proposal; never reuse."""

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
        invoker: Invoker | None = None,
        calling_contract: str | None = None,
        depth: int = 0,
        recording: _Recording | None = None,
        private: PrivateReader | None = None,
    ) -> None:
        self._state = state
        self._private = private
        self.namespace = namespace
        self.tx_id = tx_id
        self.caller = caller
        self.last_block_time_ms = last_block_time_ms
        self.args = args
        self.transient: Mapping[str, bytes] = dict(transient or {})
        self.read_only = read_only
        # The contract whose call this is, None for the contract the proposal named.
        self.calling_contract = calling_contract
        self.depth = depth
        self._invoker = invoker
        rec = self._rec = recording if recording is not None else _Recording()
        self._reads: dict[str, Version | None] = rec.reads.setdefault(namespace, {})
        self._writes: dict[str, bytes | None] = rec.writes.setdefault(namespace, {})
        self._ranges: list[RangeRead] = rec.ranges.setdefault(namespace, [])

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
        budget = MAX_RANGE_KEYS - self._rec.range_keys
        rows = self._state.get_range(self.namespace, start, end, budget + 1)
        if len(rows) > budget:
            raise ContractError(f"range scans returned more than {MAX_RANGE_KEYS} keys in one transaction")
        self._rec.range_keys += len(rows)
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
        if len(self._rec.events) >= MAX_EVENTS:
            raise ContractError(f"more than {MAX_EVENTS} events in one transaction")
        self._rec.events.append((name, payload))

    # ---- calls ------------------------------------------------------------------------------

    def invoke_contract(self, contract: str, function: str, *args: Any) -> bytes:
        """Run ``contract.function(*args)`` in this transaction and return its payload.

        The callee sees the same committed state, caller, block time and transient map, and
        ``calling_contract`` set to this contract's name; its reads and writes go to its own
        namespace. A query may only call functions that do not write. If the callee raises, its
        writes and events are dropped and the exception reaches this contract (a ContractError can
        be caught; left uncaught, it is the transaction's answer).
        """
        if self._invoker is None:
            raise ContractError("contract calls are not available in this simulation")
        if not isinstance(contract, str) or not contract or not isinstance(function, str) or not function:
            raise ContractError("contract and function names must be non-empty strings")
        if self.depth + 1 > MAX_CALL_DEPTH:
            raise ContractError(f"contract calls nested deeper than {MAX_CALL_DEPTH}")
        snap = self._rec.snapshot()
        try:
            return self._invoker(self, contract, function, args)
        except BaseException:
            self._rec.restore(snap)
            raise

    def callee(self, namespace: str, args: tuple[Any, ...], *, read_only: bool) -> Stub:
        """The stub for a call from this contract into ``namespace`` (used by the runtime)."""
        if namespace not in self._rec.reads and len(self._rec.reads) >= MAX_NAMESPACES:
            raise ContractError(f"more than {MAX_NAMESPACES} contracts in one transaction")
        return Stub(
            self._state,
            namespace,
            tx_id=self.tx_id,
            caller=self.caller,
            last_block_time_ms=self.last_block_time_ms,
            args=args,
            transient=self.transient,
            read_only=self.read_only or read_only,
            invoker=self._invoker,
            calling_contract=self.namespace,
            depth=self.depth + 1,
            recording=self._rec,
            private=self._private,
        )

    # ---- private data -----------------------------------------------------------------------

    def _collection(self, collection: str) -> PrivateReader:
        if self._private is None:
            raise ContractError("private data is not available on this node", 503)
        if not isinstance(collection, str) or not collection:
            raise ContractError("collection must be a non-empty string")
        self._private.check_collection(self.namespace, collection)
        return self._private

    def get_private(self, collection: str, key: str) -> bytes | None:
        """The committed private value of ``key`` in ``collection`` (members only), or ``None``.

        The public read set records only the key's hash and version (MVCC on every node)."""
        check_key(key)
        got = self._collection(collection).get_private(self.namespace, collection, key)
        reads = self._rec.pvt_reads.setdefault((self.namespace, collection), {})
        if key not in reads:
            if sum(len(r) for r in self._rec.pvt_reads.values()) >= MAX_READS:
                raise ContractError(f"more than {MAX_READS} private keys read in one transaction")
            reads[key] = None if got is None else got[1]
        return None if got is None else got[0]

    def _write_private(self, collection: str, key: str, value: bytes | None) -> None:
        if self.read_only:
            raise ReadOnlyViolation(f"a query function wrote private key {key!r}")
        check_key(key)
        self._collection(collection)
        writes = self._rec.pvt_writes.setdefault((self.namespace, collection), {})
        if key not in writes and sum(len(w) for w in self._rec.pvt_writes.values()) >= MAX_WRITES:
            raise ContractError(f"more than {MAX_WRITES} private keys written in one transaction")
        writes[key] = value

    def put_private(self, collection: str, key: str, value: bytes) -> None:
        """Write ``value`` privately: only member organisations' nodes ever hold the plaintext; the
        ledger carries the hashes of the key and value (Fabric's PutPrivateData)."""
        self._write_private(collection, key, _check_bytes(value, MAX_VALUE_BYTES, "private value"))

    def del_private(self, collection: str, key: str) -> None:
        self._write_private(collection, key, None)

    def private_write_sets(self) -> list[WriteSet]:
        """The plaintext private writes of the whole transaction, one write set per namespace and
        collection (never on the ledger)."""
        return [
            WriteSet(self.tx_id, ns, c, tuple(sorted(w.items())))
            for (ns, c), w in sorted(self._rec.pvt_writes.items())
            if w
        ]

    # ---- results ----------------------------------------------------------------------------

    @property
    def events(self) -> tuple[tuple[str, bytes], ...]:
        """Every event of the transaction, from this contract and the ones it called, in order."""
        return tuple(self._rec.events)

    def rwset(self) -> ReadWriteSet:
        """What this contract's call read and would write; reads and writes sorted by key."""
        return self._rec.rwset(self.namespace)

    def extra_rwsets(self) -> tuple[ReadWriteSet, ...]:
        """The read/write sets of the other namespaces the transaction's calls touched, sorted by
        namespace; a namespace whose calls read and wrote nothing is left out."""
        rec = self._rec
        return tuple(
            rec.rwset(ns)
            for ns in sorted(rec.reads)
            if ns != self.namespace and (rec.reads[ns] or rec.writes[ns] or rec.ranges[ns] or rec.has_private(ns))
        )
