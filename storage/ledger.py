"""A channel's ledger: the block store, its indices, the world state and history, committed as one.

``commit`` checks that a block extends the tip (number, previous hash, channel, RFC 6962 Merkle
root of its transactions) and then writes everything the block changes in ONE synchronous LevelDB
write batch: the block bytes, the hash and tx-id indices, the validation codes, the state writes
and history entries of its VALID transactions, and the height marker. LevelDB applies a batch
atomically and, with ``sync=True``, durably before ``write`` returns (its log record is fsync'd),
so after a crash either all of a block is there or none of it, and the height marker says which.

Everything that is hashed is hashed from the stored bytes (see :mod:`storage.codec`), and the
state writes are parsed from those same bytes, so the block, its indices and the state can never
disagree with each other.

On construction the ledger reconciles itself with what is on disk (``_recover``): it reads the
height marker and checks that the tip block is there, is intact, hashes to the marker's tip hash,
and is fully indexed, and that no block lies beyond it. With one batch per block there is nothing
to repair; any disagreement is corruption and raises.

This module must never write a block that does not extend the tip, never write part of a block,
and never return data that failed a check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crypto.encoding import EncodingError, decode
from storage import keys
from storage.blockstore import BlockStore, BlockSummary, TxProof, TxRecord, pack_crc, verify_tx_proof
from storage.codec import CommitSlices, commit_slices
from storage.errors import ChainError, CorruptionError, NotFound, StorageError
from storage.kv import Database
from storage.model import (
    CONFIG_CONTRACT,
    GENESIS_PREVIOUS_HASH,
    Block,
    BlockHeader,
    ChannelConfig,
    ValidationCode,
    Version,
)
from storage.state import HistoryEntry, StateStore
from storage.verify import KeyResolver, recover, verify_range

__all__ = [
    "CONFIG_KEY",
    "CONFIG_NAMESPACE",
    "BlockSummary",
    "ChannelLedger",
    "CheckedBlock",
    "HistoryEntry",
    "KeyResolver",
    "StagedCommit",
    "TxProof",
    "TxRecord",
    "list_channels",
    "verify_tx_proof",
]

# Channel configuration convention: a config transaction writes ChannelConfig.to_obj(), canonically
# encoded, to this state key. latest_config() reads it back.
CONFIG_NAMESPACE = CONFIG_CONTRACT
CONFIG_KEY = "channel"


# Tx ids remembered as absent between the validator's duplicate check and the commit of the block
# it validated. A block holds at most BatchConfig.absolute_max_bytes (10 MiB) of transactions of
# at least ~300 bytes each, so 32768 ids cover the largest block; beyond that commit just looks up.
ABSENT_CACHE_MAX = 32768

_VALID = int(ValidationCode.VALID)
_DUPLICATE = int(ValidationCode.DUPLICATE_TXID)
_CODES = frozenset(int(c) for c in ValidationCode)
_FLAG_PUT = b"\x00"
_FLAG_DELETE = bytes([keys.HISTORY_DELETE])


class ChannelLedger:
    """One channel's ledger in a node's :class:`Database`. One instance per channel per process."""

    def __init__(self, db: Database, channel: str) -> None:
        self.db = db
        self.channel = channel
        self._raw = db.raw
        self._cp = keys.channel_prefix(channel)
        self._blocks = BlockStore(self._raw, self._cp)
        self._state = StateStore(self._raw, self._cp, self._blocks)
        self._height = 0
        self._tip: bytes | None = None
        # tx id -> ledger height at which tx_location() found it absent (see _fill).
        self._absent: dict[bytes, int] = {}
        self._staged: StagedCommit | None = None  # built, not yet written (see stage)
        self._recover()

    # -- chain position -------------------------------------------------------------------------

    @property
    def height(self) -> int:
        """Number of committed blocks, which is also the number of the next block."""
        return self._height

    @property
    def tip_hash(self) -> bytes | None:
        """Header hash of the last committed block; None while the ledger is empty."""
        return self._tip

    # -- commit ---------------------------------------------------------------------------------

    def commit(self, block: Block, codes: Sequence[ValidationCode], *, block_bytes: bytes | None = None) -> None:
        """Append ``block`` with its validation codes, atomically and durably.

        ``block_bytes``, when the caller already holds them (a block received from Raft or gossip
        and decoded into ``block``), must be the block's canonical encoding; it saves re-encoding.
        They are checked against ``block``'s header (hash) and Merkle root before anything is
        written, and the stored block, indices and state are all derived from them.

        The same as ``stage(check_block(block, block_bytes), codes).write()``; a caller that wants
        to overlap the next block's checks with this block's disk sync uses those steps itself.
        """
        self.stage(self.check_block(block, block_bytes), codes).write()

    def check_block(self, block: Block, block_bytes: bytes | None = None) -> CheckedBlock:
        """The checks of a block that do not depend on the ledger's state: it is for this channel,
        its bytes parse as a block, hash to ``block``'s header and hold its transactions, and the
        header's data hash is their Merkle root. This is most of a commit's CPU (every transaction
        is hashed), and it may run while the previous block is still being written.

        The Merkle root is computed on a native thread where :mod:`crypto.native` has one, and
        checked by :meth:`CheckedBlock.check_root`, which ``stage`` calls before it returns: so
        a block with a wrong root is refused by ``stage`` (ChainError), never written, and the
        root's hashing overlaps the building of the write batch."""
        h = block.header
        n = h.number
        if h.channel != self.channel:
            raise ChainError(f"block {n} is for channel {h.channel!r}, not {self.channel!r}", height=n)
        data = block.encode() if block_bytes is None else bytes(block_bytes)
        try:
            sl = commit_slices(data)
        except CorruptionError as exc:
            raise ChainError(f"block {n}: bytes do not parse as a block: {exc}", height=n) from exc
        if block_bytes is not None and sl.header_hash != h.hash():
            raise ChainError(f"block {n}: block_bytes do not encode this block's header", height=n)
        if len(sl.tx_ids) != len(block.transactions):
            count = len(block.transactions)
            raise ChainError(f"block {n}: block_bytes hold {len(sl.tx_ids)} txs, not {count}", height=n)
        return CheckedBlock(block, data, sl)

    def stage(
        self,
        checked: CheckedBlock,
        codes: Sequence[ValidationCode],
        extra: Sequence[tuple[bytes, bytes | None]] = (),
    ) -> StagedCommit:
        """Check that ``checked`` extends the tip and build its write batch, without writing it.

        At most one block is staged at a time: until its ``write`` returns, the ledger's state is
        not yet the state the next block must be validated and staged against, so a second
        ``stage`` raises ChainError. A staged commit that is dropped unwritten releases the slot
        only through ``abandon``.

        ``extra`` are further puts (value None: delete) that must land atomically with the block:
        the private state this node derives from it (see :mod:`storage.privstate`). They must lie
        outside the keyspaces the block itself writes.
        """
        if self._staged is not None:
            raise ChainError(f"block {self._staged.number} is still being written", height=self._height)
        batch = self._raw.write_batch(sync=True)
        self._batch(checked, codes, batch)
        for k, v in extra:
            if v is None:
                batch.delete(k)
            else:
                batch.put(k, v)
        staged = StagedCommit(self, checked.block.header.number, checked.slices.header_hash, batch)
        self._staged = staged
        return staged

    def _check_extends(self, block: Block, codes: Sequence[ValidationCode]) -> bytes:
        """ChainError unless ``block`` is the next block on the tip and ``codes`` fit it; the
        codes as bytes."""
        n = self._height
        h = block.header
        if h.number != n:
            raise ChainError(f"block {h.number} does not extend height {n}", height=h.number)
        expected_prev = self._tip if self._tip is not None else GENESIS_PREVIOUS_HASH
        if h.previous_hash != expected_prev:
            raise ChainError(f"block {n}: previous hash does not match the tip", height=n)
        if len(codes) != len(block.transactions):
            raise ChainError(f"block {n}: {len(codes)} codes for {len(block.transactions)} txs", height=n)
        try:
            code_bytes = bytes(codes)  # IntEnum members are ints; anything outside 0..255 raises
        except (ValueError, TypeError) as exc:
            raise ChainError(f"block {n}: bad validation codes", height=n) from exc
        if not _CODES.issuperset(code_bytes):
            raise ChainError(f"block {n}: unknown validation code", height=n)
        return code_bytes

    def _batch(self, checked: CheckedBlock, codes: Sequence[ValidationCode], batch: Any) -> None:
        """Check ``checked`` against the tip and put its writes into ``batch``; then wait for its
        Merkle root, which was being hashed meanwhile, and check it (ChainError: batch dropped)."""
        code_bytes = self._check_extends(checked.block, codes)
        self._fill(batch, checked.block.header.number, checked.data, checked.slices, code_bytes)
        checked.check_root()

    def _written(self, staged: StagedCommit) -> None:
        assert self._staged is staged, "a staged commit was written out of turn"
        self._height = staged.number + 1
        self._tip = staged.header_hash
        self._absent.clear()  # every entry is for a height that has now passed
        self._staged = None

    def _abandoned(self, staged: StagedCommit) -> None:
        if self._staged is staged:
            self._staged = None

    def planned_writes(
        self, block: Block, codes: Sequence[ValidationCode], *, block_bytes: bytes | None = None
    ) -> list[tuple[bytes, bytes | None]]:
        """The exact operations ``commit`` would put in its batch (value None: delete), without
        writing anything. For benchmarks against raw LevelDB, and for inspection."""
        rec = _Recorder()
        self._batch(self.check_block(block, block_bytes), codes, rec)
        return rec.ops

    def _fill(self, batch: Any, n: int, data: bytes, sl: CommitSlices, code_bytes: bytes) -> None:
        """Put block ``n``'s writes into ``batch``; raises ChainError (batch discarded) on a broken rule."""
        cp = self._cp
        raw_get = self._raw.get
        put, delete = batch.put, batch.delete
        put(keys.block_key(cp, n), data)
        put(keys.hash_key(cp, sl.header_hash), keys.U64.pack(n))
        put(keys.codes_key(cp, n), code_bytes)
        tx_prefix = cp + keys.TX
        hist_prefix = cp + keys.HISTORY
        pack_loc, pack_ver, u32 = keys.LOC_STRUCT.pack, keys.VERSION_STRUCT.pack, keys.U32.pack
        ns_prefix = self._state.ns_prefix
        absent_get = self._absent.get
        rwsets, extra_rwsets = sl.rwsets, sl.extra_rwsets
        tx_ids = sl.tx_ids
        # Ids taken by a VALID transaction earlier in this block (only needed when ids repeat).
        taken_here: set[bytes] | None = set() if len(set(tx_ids)) != len(tx_ids) else None
        unpack_loc = keys.unpack_loc
        put_hashed = self._put_hashed
        last_ns: object = None
        sp = nsb = b""
        for i, tx_id in enumerate(tx_ids):
            code = code_bytes[i]
            tk = tx_prefix + tx_id
            # An id is taken only by a VALID transaction: an invalid copy (say, a signed proposal
            # replayed with forged endorsements) must not block the genuine one. The index points
            # at the VALID occurrence, else at the latest invalid attempt.
            # absent[tx_id] == n: the validator's tx_location() found no such id at this height,
            # and only this commit can add one, so the lookup need not be repeated.
            existing = None if absent_get(tx_id) == n else raw_get(tk)
            taken = existing is not None and unpack_loc(existing)[2] == _VALID
            if taken_here is not None and tx_id in taken_here:
                taken = True
            if code != _VALID:
                if not taken and code != _DUPLICATE:
                    put(tk, pack_loc(n, i, code))
                continue  # writes of invalid transactions are never applied
            if taken:
                raise ChainError(f"block {n} tx {i}: marked VALID but tx id {tx_id.hex()} is committed", height=n)
            put(tk, pack_loc(n, i, code))
            if taken_here is not None:
                taken_here.add(tx_id)
            ver = pack_ver(n, i)
            try:
                # The called contract's namespace, then (rarely) those of the contracts it called.
                for rw in (rwsets[i],) if i not in extra_rwsets else (rwsets[i], *extra_rwsets[i]):
                    ns, writes = rw[0], rw[2]
                    if len(rw) > 4:  # hashed private writes: every node keeps them (storage.privstate)
                        put_hashed(batch, ns, rw[4], ver)
                    if ns != last_ns:  # consecutive txs mostly share a contract
                        sp = ns_prefix(ns)
                        nsb = sp[len(cp) + 1 :]  # u16 length ‖ namespace, shared with the history key
                        last_ns = ns
                    for key, value in writes:
                        kb = key.encode("utf-8")
                        hk = hist_prefix + nsb + u32(len(kb)) + kb + ver
                        if type(value) is bytes:
                            put(sp + kb, ver + value)
                            put(hk, tx_id + _FLAG_PUT)
                        elif value is None:
                            delete(sp + kb)
                            put(hk, tx_id + _FLAG_DELETE)
                        else:
                            raise TypeError("write value must be bytes or nil")
                        if type(key) is not str:
                            raise TypeError("write key must be str")
            except (TypeError, ValueError, AttributeError, IndexError, UnicodeEncodeError, StorageError) as exc:
                # a read/write set the validator should have refused: the whole block is refused
                raise ChainError(f"block {n} tx {i}: VALID tx with a malformed rwset: {exc}", height=n) from exc
        # Last: the checksum was being computed on another core meanwhile (see commit_slices).
        put(keys.crc_key(cp, n), pack_crc(sl.crc32))
        put(keys.meta_key(cp), keys.pack_height(n + 1, sl.header_hash))

    def _put_hashed(self, batch: Any, ns: str, collections: Any, ver: bytes) -> None:
        """The hashed writes of a VALID transaction's private collections (see docs/storage.md)."""
        for name, _reads, writes in collections:
            base = self._cp + keys.HASHED + keys.coll_bytes(ns, name)
            for key_hash, value_hash in writes:
                if type(key_hash) is not bytes or len(key_hash) != keys.HASH_LEN:
                    raise TypeError("hashed key must be 32 bytes")
                if value_hash is None:
                    batch.delete(base + key_hash)
                elif type(value_hash) is bytes and len(value_hash) == keys.HASH_LEN:
                    batch.put(base + key_hash, ver + value_hash)
                else:
                    raise TypeError("hashed value must be 32 bytes or nil")

    def get_hashed(self, ns: str, collection: str, key_hash: bytes) -> tuple[bytes, Version] | None:
        """The committed (value hash, version) of a private key, known on every node; None if absent."""
        raw = self._raw.get(keys.hashed_key(self._cp, ns, collection, key_hash))
        if raw is None:
            return None
        if len(raw) != keys.VERSION_LEN + keys.HASH_LEN:
            raise CorruptionError("hashed private state entry has the wrong length")
        return raw[keys.VERSION_LEN :], keys.unpack_version(raw)

    def get_hashed_version(self, ns: str, collection: str, key_hash: bytes) -> Version | None:
        got = self.get_hashed(ns, collection, key_hash)
        return None if got is None else got[1]

    # -- blocks and transactions ----------------------------------------------------------------

    def get_block(self, number: int) -> Block:
        self._check_number(number)
        return self._blocks.block(number)

    def get_block_bytes(self, number: int) -> bytes:
        """The block's canonical bytes exactly as committed (checked, not re-encoded)."""
        self._check_number(number)
        return self._blocks.block_bytes(number)

    def block_number_of_hash(self, header_hash: bytes) -> int:
        """The number of the block whose header hashes to ``header_hash``; NotFound if none."""
        return self._blocks.number_of_hash(header_hash)

    def get_block_by_hash(self, header_hash: bytes) -> Block:
        number = self._blocks.number_of_hash(header_hash)
        block = self.get_block(number)
        if block.hash() != header_hash:
            raise CorruptionError(f"hash index points block {number} at another hash", height=number)
        return block

    def get_block_summary(self, number: int) -> BlockSummary:
        """Header, hash, tx ids, orderer and signature of block ``number``, without decoding its
        transactions."""
        self._check_number(number)
        return self._blocks.summary(number)

    def get_header(self, number: int) -> BlockHeader:
        self._check_number(number)
        return self._blocks.header(number)

    def get_codes(self, number: int) -> list[ValidationCode]:
        self._check_number(number)
        return self._blocks.codes(number)

    def get_tx(self, tx_id: bytes) -> TxRecord:
        return self._blocks.get_tx(tx_id)

    def tx_location(self, tx_id: bytes) -> tuple[int, int, ValidationCode] | None:
        """Where ``tx_id`` committed VALID, else its latest invalid attempt, else None."""
        height = self._height  # read before the lookup: see _fill
        loc = self._blocks.tx_location(tx_id)
        if loc is None and len(self._absent) < ABSENT_CACHE_MAX:
            self._absent[tx_id] = height
        return loc

    def tx_proof(self, tx_id: bytes) -> TxProof:
        return self._blocks.tx_proof(tx_id)

    def _check_number(self, number: int) -> None:
        if not 0 <= number < self._height:
            raise NotFound(f"block {number} is not committed (height {self._height})")

    # -- state ----------------------------------------------------------------------------------

    def get_state(self, ns: str, key: str) -> tuple[bytes, Version] | None:
        return self._state.get_state(ns, key)

    def get_version(self, ns: str, key: str) -> Version | None:
        return self._state.get_version(ns, key)

    def get_range(self, ns: str, start: str, end: str, limit: int | None = None) -> list[tuple[str, bytes, Version]]:
        """Keys in ``[start, end)`` of ``ns`` in order (``end == ""``: to the end of ``ns``)."""
        return self._state.get_range(ns, start, end, limit)

    def get_history(self, ns: str, key: str, limit: int | None = None) -> list[HistoryEntry]:
        """Every write of ``ns``/``key`` by a VALID transaction, oldest first."""
        return self._state.get_history(ns, key, limit)

    def latest_config(self) -> ChannelConfig | None:
        """The channel configuration last written to ``_config``/``channel`` (None if never)."""
        got = self._state.get_state(CONFIG_NAMESPACE, CONFIG_KEY)
        if got is None:
            return None
        try:
            return ChannelConfig.from_obj(decode(got[0]))
        except EncodingError as exc:
            raise CorruptionError(f"stored channel config does not decode: {exc}") from exc

    # -- verification and recovery --------------------------------------------------------------

    def verify_chain(self, msp_or_orderer_keys: KeyResolver | None = None, start: int = 0) -> None:
        """Walk blocks ``start..height-1`` checking hash links, Merkle roots, indices and (with a
        key resolver) orderer signatures; raise CorruptionError/ChainError naming the first bad
        height."""
        verify_range(
            self._raw, self._cp, self._blocks, self.channel, self._height, self._tip, msp_or_orderer_keys, start
        )

    def _recover(self) -> None:
        self._height, self._tip = recover(self._raw, self._cp, self._blocks, self.channel)


@dataclass(frozen=True, slots=True)
class CheckedBlock:
    """A block whose bytes passed :meth:`ChannelLedger.check_block`, ready to be staged."""

    block: Block
    data: bytes  # its canonical encoding, as it will be stored
    slices: CommitSlices

    def check_root(self) -> None:
        """ChainError unless the header's data hash is the Merkle root of the transactions in
        ``data`` (waiting for the root if it is still being computed)."""
        if self.slices.merkle_root != self.block.header.data_hash:
            n = self.block.header.number
            raise ChainError(f"block {n}: data hash is not the Merkle root of its transactions", height=n)


class StagedCommit:
    """One block's write batch, checked against the tip and built, not yet written.

    ``write`` is the synchronous LevelDB write: it blocks until the batch is durable, and LevelDB
    releases the GIL meanwhile, so it may run on a :class:`storage.writer.SyncWriter` thread while
    the caller checks the next block. Only then do the ledger's height and tip advance.
    """

    __slots__ = ("_batch", "_done", "_ledger", "header_hash", "number")

    def __init__(self, ledger: ChannelLedger, number: int, header_hash: bytes, batch: Any) -> None:
        self._ledger = ledger
        self.number = number
        self.header_hash = header_hash
        self._batch = batch
        self._done = False

    def write(self) -> None:
        if self._done:
            raise ChainError(f"block {self.number}: staged commit already written or abandoned", height=self.number)
        self._done = True
        try:
            self._batch.write()
        except BaseException:
            # LevelDB applies nothing of a batch whose log write or sync failed, and then refuses
            # every later write with the same error, so the height stays and nothing can be
            # staged on top of a half-written block; the next open recovers from what is on disk.
            self._ledger._abandoned(self)
            raise
        self._ledger._written(self)

    def abandon(self) -> None:
        """Drop the batch unwritten and free the ledger for another block."""
        self._done = True
        self._ledger._abandoned(self)


class _Recorder:
    """A stand-in write batch that records operations instead of writing them."""

    def __init__(self) -> None:
        self.ops: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.ops.append((key, value))

    def delete(self, key: bytes) -> None:
        self.ops.append((key, None))


def list_channels(db: Database) -> list[str]:
    """Names of the channels that have a height marker in ``db`` (ledgers with blocks), sorted."""
    out: list[str] = []
    raw = db.raw
    seek: bytes | None = b"C"
    while seek is not None:
        with raw.iterator(start=seek, include_value=False) as it:
            key = next(it, None)
        if key is None or not key.startswith(b"C") or len(key) < 2:
            break
        cp = key[: 2 + key[1]]
        try:
            name = cp[2:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptionError(f"channel prefix {cp!r} is not UTF-8") from exc
        if raw.get(keys.meta_key(cp)) is not None:
            out.append(name)
        seek = keys.prefix_end(cp)
    return sorted(out)
