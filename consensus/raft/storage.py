"""Raft log storage: the read-only interface the core uses, and an in-memory implementation.

Like etcd-io/raft's ``storage.go``, the core only *reads* storage. The driver (or a test) writes
what a :class:`~consensus.raft.core.Ready` asks to persist through :meth:`WritableStorage.save`
before any message of that Ready is sent (Raft paper Figure 2: persistent state is updated on
stable storage before responding to RPCs).

Index layout: entries ``(compacted_index, last_index]`` are kept. ``compacted_index`` is the index
of the newest snapshot or compaction point, whose term is remembered so that the entry after it
can still be matched (§5.3 consistency check). ``first_index() == compacted_index + 1``.

This module must never read the clock or perform I/O; ``MemoryStorage`` keeps everything in RAM
(tests, the simulator), ``LevelDBStorage`` (``leveldb_storage.py``) on disk.
"""

from __future__ import annotations

from typing import Protocol

from consensus.raft.types import Compacted, ConfState, Entry, HardState, Snapshot, Unavailable

__all__ = ["MemoryStorage", "Storage", "WritableStorage", "limit_size"]


class Storage(Protocol):
    """What the Raft core reads. Errors: :class:`Compacted`, :class:`Unavailable`."""

    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries ``[lo, hi)``, cut to ``max_bytes`` but always at least one if any."""
        ...

    def term(self, i: int) -> int: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


class WritableStorage(Storage, Protocol):
    """What the driver additionally calls: persist a Ready, take a snapshot, compact."""

    def save(self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None) -> None:
        """Atomically and durably apply a snapshot, then entries (truncating any conflicting
        suffix), then the hard state."""
        ...

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot: ...

    def compact(self, index: int) -> None:
        """Discard entries up to and including ``index`` (which must be ≤ the snapshot index)."""
        ...


def limit_size(ents: list[Entry], max_bytes: int) -> list[Entry]:
    """The longest prefix of ``ents`` within ``max_bytes``, but never fewer than one entry."""
    if not ents:
        return ents
    total = ents[0].size
    n = 1
    while n < len(ents):
        total += ents[n].size
        if total > max_bytes:
            break
        n += 1
    return ents[:n]


class MemoryStorage:
    """In-memory :class:`WritableStorage`. Survives a simulated crash: the simulator builds a new
    core on the same object, so it holds exactly what was "synced"."""

    def __init__(self) -> None:
        self._hard = HardState()
        self._snap = Snapshot()
        # _ents[0] is a dummy entry carrying (compacted_index, its term).
        self._ents: list[Entry] = [Entry(0, 0)]

    # -------------------------------------------------------------------------------- reads
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard, self._snap.conf_state

    def hard_state(self) -> HardState:
        return self._hard

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def term(self, i: int) -> int:
        off = self._ents[0].index
        if i < off:
            raise Compacted(f"index {i} is compacted (first kept {off + 1})")
        if i - off >= len(self._ents):
            raise Unavailable(f"index {i} is beyond the last index {self.last_index()}")
        return self._ents[i - off].term

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        off = self._ents[0].index
        if lo <= off:
            raise Compacted(f"index {lo} is compacted (first kept {off + 1})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"entries up to {hi - 1} requested, last is {self.last_index()}")
        return limit_size(self._ents[lo - off : hi - off], max_bytes)

    def snapshot(self) -> Snapshot:
        return self._snap

    # ------------------------------------------------------------------------------- writes
    def save(self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None) -> None:
        if snapshot is not None:
            self._apply_snapshot(snapshot)
        if entries:
            self._append(entries)
        if hard_state is not None:
            self._hard = hard_state

    def _apply_snapshot(self, snap: Snapshot) -> None:
        if snap.index <= self._snap.index:
            return  # older than what we have: nothing to do (etcd ErrSnapOutOfDate)
        self._snap = snap
        self._ents = [Entry(snap.term, snap.index)]

    def _append(self, entries: list[Entry]) -> None:
        first = self.first_index()
        last = entries[-1].index
        if last < first:
            return  # all already compacted
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        off = entries[0].index - self._ents[0].index
        assert off <= len(self._ents), f"gap in log: appending {entries[0].index} after {self.last_index()}"
        # Truncate any conflicting suffix, then append (§5.3: delete the existing entry and all that follow).
        self._ents = self._ents[:off] + list(entries)

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        if index <= self._snap.index:
            raise Compacted(f"snapshot at {index} is not newer than {self._snap.index}")
        if index > self.last_index():
            raise Unavailable(f"snapshot index {index} beyond last index {self.last_index()}")
        self._snap = Snapshot(index, self.term(index), conf_state, data)
        return self._snap

    def compact(self, index: int) -> None:
        off = self._ents[0].index
        if index <= off:
            raise Compacted(f"already compacted to {off}")
        assert index <= self._snap.index, "compacting beyond the snapshot would lose committed state"
        self._ents = [Entry(self._ents[index - off].term, index), *self._ents[index - off + 1 :]]
