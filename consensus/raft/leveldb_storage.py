"""Durable Raft log on LevelDB (plyvel): hard state, entries and snapshot of one channel.

Layout, under the prefix ``raft/<channel>/`` of a shared database:

* ``m/hard``     → canonical encoding of :class:`HardState` (term, vote, commit)
* ``m/snap``     → canonical encoding of the newest :class:`Snapshot`
* ``m/compact``  → ``(index, term)`` of the compaction point: entries up to it are gone
* ``e/<index as 8-byte big-endian>`` → canonical encoding of an :class:`Entry`

Atomicity: every :meth:`save` (one Ready: snapshot, entries with the truncation of a conflicting
suffix, hard state) is a single ``WriteBatch`` written with ``sync=True``, so after a crash
either all of it is on disk or none (Raft paper Figure 2: persist before responding). One
exception: a Ready whose only change is the commit index is written without the sync. The
paper's persistent state is currentTerm, votedFor and log[]; commitIndex is volatile state
(Figure 2), which etcd-raft also writes unsynced (``MustSync``). Losing it to a machine crash
only makes the restarted node learn the commit index again (the core clamps the applied index to
it, and the ordering service skips entries it already applied); LevelDB's log is sequential, so
the next synced write makes it durable anyway.
Snapshot creation and compaction are their own synchronous batches; a snapshot is written
before the entries it replaces are deleted. The driver may run them on its writer thread (while
its own task waits): each publishes its new state with one attribute assignment after its write,
and nothing else reads the entries they touch meanwhile (the ordering service only reads the
unapplied tail, far above the compaction point).

Recovery: the constructor reads the three metadata keys and finds the last entry by a reverse
scan; the entries between compaction point and last index must be contiguous, and each stored
entry must carry the index of its key (checked when read: corruption raises, never "handled").

This module must never be imported by the core (``raft.py``, ``core.py``): only the driver and
the node assembly use it.
"""

from __future__ import annotations

from typing import Any

import plyvel

from consensus.raft.storage import limit_size
from consensus.raft.types import Compacted, ConfState, Entry, HardState, Snapshot, Unavailable
from crypto.encoding import decode, encode

__all__ = ["LevelDBStorage", "PreparedSave"]

_HARD = b"m/hard"
_SNAP = b"m/snap"
_COMPACT = b"m/compact"
_ENTRY = b"e/"


# Terms of the newest entries kept in memory: the Raft core and the driver ask for the term of
# recent entries on every append and response, and reading one from disk decodes the whole
# entry (a block of up to a few MiB). 8192 entries cover far more than any follower's lag that
# is served from the log rather than a snapshot; older terms are read from disk.
TERM_CACHE_MAX = 8192
# Bytes of the newest entries kept decoded in memory: committed entries are read back to be
# applied (and by the leader, to be sent) moments after they were written, and decoding a block
# from disk again costs as much as a block's worth of per-transaction work. 32 MiB holds the
# ordering service's in-flight window (16 blocks of up to 2 MiB) with room to spare.
ENTRY_CACHE_BYTES = 32 * 1024 * 1024


def _ekey(index: int) -> bytes:
    return _ENTRY + index.to_bytes(8, "big")


class CorruptLog(RuntimeError):
    """Stored Raft state fails its consistency checks: stop rather than continue on bad data."""


class PreparedSave:
    """One Ready's write batch, encoded and not yet written (see :meth:`LevelDBStorage.prepare_save`)."""

    __slots__ = ("_batch", "_state", "_storage", "_written", "blocking")

    def __init__(self, storage: LevelDBStorage, batch: Any, state: tuple[Any, ...], blocking: bool) -> None:
        self._storage = storage
        self._batch = batch
        self._state = state
        self._written = False
        # Whether write() waits for the disk (fsync); a commit-index-only write does not.
        self.blocking = blocking

    def write(self) -> None:
        """The synchronous (fsync'd) write. Blocking; safe on any thread: it touches no Python
        state of the storage, and plyvel releases the GIL while LevelDB writes and syncs."""
        assert not self._written, "write() called twice"
        self._batch.write()
        self._written = True

    def finish(self) -> None:
        """After :meth:`write` returned: the storage answers from the new state."""
        assert self._written, "finish() before the write is durable"
        self._storage._finish_save(self._state)


class LevelDBStorage:
    """A :class:`~consensus.raft.storage.WritableStorage` on LevelDB. One writer (the driver)."""

    def __init__(self, db: Any, channel: str) -> None:
        """``db`` is an open ``plyvel.DB`` (or a prefixed one); the caller owns and closes it."""
        if not channel or "/" in channel:
            raise ValueError(f"bad channel name {channel!r}")
        self._db = db.prefixed_db(b"raft/" + channel.encode() + b"/")
        raw_hard = self._db.get(_HARD)
        self._hard = HardState.from_wire(decode(raw_hard)) if raw_hard is not None else HardState()
        raw_snap = self._db.get(_SNAP)
        self._snap = Snapshot.from_wire(decode(raw_snap)) if raw_snap is not None else Snapshot()
        raw_compact = self._db.get(_COMPACT)
        if raw_compact is not None:
            ci, ct = decode(raw_compact)
            self._compact = (int(ci), int(ct))
        else:
            self._compact = (0, 0)
        self._last = self._compact[0]
        self._saving = False  # a prepare_save() is not finished yet
        self._terms: dict[int, int] = {}  # index -> term of recent entries (TERM_CACHE_MAX)
        self._cache: dict[int, Entry] = {}  # index -> newest written entries (ENTRY_CACHE_BYTES)
        self._cache_bytes = 0
        with self._db.iterator(prefix=_ENTRY, reverse=True, include_value=False) as it:
            for key in it:
                self._last = int.from_bytes(key[len(_ENTRY) :], "big")
                break
        if self._last < self._compact[0] or self._snap.index < self._compact[0]:
            raise CorruptLog(f"last index {self._last} / snapshot {self._snap.index} before compaction point")
        if self._last > self._compact[0] and self._db.get(_ekey(self._compact[0] + 1)) is None:
            raise CorruptLog(f"entry {self._compact[0] + 1} missing after the compaction point")

    @classmethod
    def open(cls, path: str, channel: str) -> tuple[LevelDBStorage, Any]:
        """Open (creating) a database at ``path``; returns the storage and the DB to close."""
        db = plyvel.DB(path, create_if_missing=True)
        return cls(db, channel), db

    # -------------------------------------------------------------------------------- reads
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard, self._snap.conf_state

    def hard_state(self) -> HardState:
        return self._hard

    def first_index(self) -> int:
        return self._compact[0] + 1

    def last_index(self) -> int:
        return self._last

    def _get(self, i: int) -> Entry:
        raw = self._db.get(_ekey(i))
        if raw is None:
            raise CorruptLog(f"entry {i} missing inside [{self.first_index()}, {self._last}]")
        e = Entry.from_wire(decode(raw))
        if e.index != i:
            raise CorruptLog(f"entry stored under index {i} says {e.index}")
        return e

    def term(self, i: int) -> int:
        ci, ct = self._compact
        if i < ci:
            raise Compacted(f"index {i} is compacted (first kept {ci + 1})")
        if i == ci:
            return ct
        if i > self._last:
            raise Unavailable(f"index {i} is beyond the last index {self._last}")
        t = self._terms.get(i)
        if t is None:
            t = self._get(i).term
            self._remember_terms([(i, t)])
        return t

    def _remember_terms(self, terms: list[tuple[int, int]]) -> None:
        cache = self._terms
        cache.update(terms)
        while len(cache) > TERM_CACHE_MAX:
            del cache[next(iter(cache))]  # the oldest remembered: any eviction is only a miss

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        if lo <= self._compact[0]:
            raise Compacted(f"index {lo} is compacted (first kept {self.first_index()})")
        if hi > self._last + 1:
            raise Unavailable(f"entries up to {hi - 1} requested, last is {self._last}")
        cache = self._cache
        if lo in cache and hi - 1 in cache:  # cached indices are contiguous up to the last one
            return limit_size([cache[i] for i in range(lo, hi)], max_bytes)
        out: list[Entry] = []
        size = 0
        with self._db.iterator(start=_ekey(lo), stop=_ekey(hi), include_key=False) as it:
            for i, raw in enumerate(it, start=lo):
                e = Entry.from_wire(decode(raw))
                if e.index != i:
                    raise CorruptLog(f"entry stored at position {i} says {e.index}")
                size += e.size
                if out and size > max_bytes:
                    break
                out.append(e)
        if len(out) < hi - lo and size <= max_bytes:
            raise CorruptLog(f"entries [{lo}, {hi}) incomplete on disk")
        return limit_size(out, max_bytes)

    def snapshot(self) -> Snapshot:
        return self._snap

    # ------------------------------------------------------------------------------- writes
    def save(self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None) -> None:
        pending = self.prepare_save(hard_state, entries, snapshot)
        pending.write()
        pending.finish()

    def prepare_save(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None
    ) -> PreparedSave:
        """:meth:`save` in three steps, so the durable write can leave the event loop's thread.

        This call encodes the Ready into one write batch; ``write()`` (blocking, any thread)
        writes it with ``sync=True``; ``finish()`` (the caller's thread, after ``write``
        returned) makes the new log visible through this object. Until ``finish`` the storage
        keeps answering from the old state, which stays true on disk for every index up to the
        old last one except a conflicting suffix being replaced (only a follower replaces one, and
        nothing reads a follower's tail meanwhile). One prepared save at a time.
        """
        assert not self._saving, "a prepared save is not finished"
        compact, last, snap = self._compact, self._last, self._snap
        # Sync unless the only change is the commit index (module docstring).
        sync = (
            bool(entries)
            or snapshot is not None
            or hard_state is None
            or (hard_state.term, hard_state.vote) != (self._hard.term, self._hard.vote)
        )
        written: list[Entry] = []
        drop_from = last + 1  # cached terms from this index on are stale after the write
        wb = self._db.write_batch(sync=sync)
        if snapshot is not None and snapshot.index > snap.index:
            # The snapshot replaces the whole log (the core only sends one when our log
            # does not contain its last entry).
            for i in range(compact[0] + 1, last + 1):
                wb.delete(_ekey(i))
            snap = snapshot
            compact = (snapshot.index, snapshot.term)
            last = snapshot.index
            drop_from = 0
            wb.put(_SNAP, encode(snapshot.to_wire()))
            wb.put(_COMPACT, encode(compact))
        if entries:
            ents = [e for e in entries if e.index > compact[0]]
            if ents:
                first, new_last = ents[0].index, ents[-1].index
                assert first <= last + 1, f"gap: appending {first} after {last}"
                # §5.3: a conflicting entry and all that follow it are deleted.
                for i in range(new_last + 1, last + 1):
                    wb.delete(_ekey(i))
                for e in ents:
                    wb.put(_ekey(e.index), encode(e.to_wire()))
                written = ents
                drop_from = min(drop_from, first)
                last = new_last
        if hard_state is not None:
            wb.put(_HARD, encode(hard_state.to_wire()))
        self._saving = True
        return PreparedSave(self, wb, (compact, last, snap, hard_state, drop_from, written), sync)

    def _finish_save(self, state: tuple[Any, ...]) -> None:
        compact, last, snap, hard_state, drop_from, ents = state
        if drop_from <= self._last:  # a suffix was replaced (only cached indices <= last exist)
            self._terms = {i: t for i, t in self._terms.items() if i < drop_from}
            self._cache = {i: e for i, e in self._cache.items() if i < drop_from}
            self._cache_bytes = sum(e.size for e in self._cache.values())
        self._compact, self._last, self._snap = compact, last, snap
        if hard_state is not None:
            self._hard = hard_state
        self._remember_terms([(e.index, e.term) for e in ents])
        self._cache_entries(ents)
        self._saving = False

    def _cache_entries(self, ents: list[Entry]) -> None:
        """Remember newly written entries; evict the oldest past ENTRY_CACHE_BYTES. The cache
        always holds a contiguous run of indices ending at the last one written."""
        cache = self._cache
        if ents and cache and ents[0].index - 1 not in cache:
            cache.clear()  # not contiguous with what is cached: start over
            self._cache_bytes = 0
        for e in ents:  # a replaced suffix was dropped in _finish_save: these are all new indices
            cache[e.index] = e
            self._cache_bytes += e.size
        while cache and (self._cache_bytes > ENTRY_CACHE_BYTES or len(cache) > TERM_CACHE_MAX):
            self._cache_bytes -= cache.pop(next(iter(cache))).size

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        if index <= self._snap.index:
            raise Compacted(f"snapshot at {index} is not newer than {self._snap.index}")
        if index > self._last:
            raise Unavailable(f"snapshot index {index} beyond last index {self._last}")
        snap = Snapshot(index, self.term(index), conf_state, data)
        self._db.put(_SNAP, encode(snap.to_wire()), sync=True)
        self._snap = snap
        return snap

    def compact(self, index: int) -> None:
        ci = self._compact[0]
        if index <= ci:
            raise Compacted(f"already compacted to {ci}")
        assert index <= self._snap.index, "compacting beyond the snapshot would lose committed state"
        marker = (index, self.term(index))
        with self._db.write_batch(sync=True) as wb:
            for i in range(ci + 1, index + 1):
                wb.delete(_ekey(i))
            wb.put(_COMPACT, encode(marker))
        self._compact = marker
