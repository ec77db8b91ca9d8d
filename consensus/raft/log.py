"""The Raft log as the core sees it: stable entries in :class:`Storage` plus an unstable tail.

Unstable entries (and at most one unstable snapshot) are those handed out in a ``Ready`` but not
yet acknowledged as persisted by ``advance``. ``committed`` and ``applied`` are indices into the
combined log. Log Matching (Raft paper §5.3) is enforced by :meth:`RaftLog.maybe_append`, which
never truncates committed entries (that would be a safety bug: it asserts).

This module must never write storage, read the clock or perform I/O.
"""

from __future__ import annotations

from consensus.raft.storage import Storage, limit_size
from consensus.raft.types import Compacted, Entry, Snapshot, Unavailable

__all__ = ["RaftLog"]

UNLIMITED = 1 << 62


class RaftLog:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        first = storage.first_index()
        # Unstable part: optional snapshot, then entries starting at ``offset``.
        self.unstable_snapshot: Snapshot | None = None
        self.unstable: list[Entry] = []
        self.offset = storage.last_index() + 1
        # The log always holds everything up to the compaction point (§7).
        self.committed = first - 1
        self.applied = first - 1

    # ---------------------------------------------------------------------------- indices
    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.offset + len(self.unstable) - 1
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.index
        return self.storage.last_index()

    def term(self, i: int) -> int:
        """Term of entry ``i``; raises :class:`Compacted` / :class:`Unavailable`."""
        if self.unstable_snapshot is not None and i == self.unstable_snapshot.index:
            return self.unstable_snapshot.term
        if self.unstable and self.offset <= i < self.offset + len(self.unstable):
            return self.unstable[i - self.offset].term
        if i > self.last_index():
            raise Unavailable(f"index {i} beyond last {self.last_index()}")
        if self.unstable_snapshot is not None and i < self.unstable_snapshot.index:
            raise Compacted(f"index {i} is before the snapshot at {self.unstable_snapshot.index}")
        return self.storage.term(i)

    def term_or_zero(self, i: int) -> int:
        try:
            return self.term(i)
        except (Compacted, Unavailable):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, i: int, term: int) -> bool:
        try:
            return self.term(i) == term
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Raft paper §5.4.1: compare the last entries' terms, then the log lengths."""
        lt = self.last_term()
        return term > lt or (term == lt and last_index >= self.last_index())

    # ---------------------------------------------------------------------------- reading
    def slice(self, lo: int, hi: int, max_bytes: int = UNLIMITED) -> list[Entry]:
        """Entries ``[lo, hi)`` within ``max_bytes`` (at least one). Raises :class:`Compacted`."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise Compacted(f"index {lo} is compacted")
        assert hi <= self.last_index() + 1, f"slice [{lo},{hi}) beyond last {self.last_index()}"
        out: list[Entry] = []
        if lo < self.offset:
            out = self.storage.entries(lo, min(hi, self.offset), max_bytes)
            if len(out) < min(hi, self.offset) - lo:
                return out  # cut by the size limit
        if hi > self.offset:
            u = self.unstable[max(lo, self.offset) - self.offset : hi - self.offset]
            out = out + u
        return limit_size(out, max_bytes)

    def entries_from(self, i: int, max_bytes: int = UNLIMITED) -> list[Entry]:
        return self.slice(i, self.last_index() + 1, max_bytes)

    def snapshot(self) -> Snapshot:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot
        return self.storage.snapshot()

    # ---------------------------------------------------------------------------- writing
    def append(self, ents: list[Entry]) -> int:
        """Append to the unstable tail, truncating from ``ents[0].index``; returns the last index."""
        if not ents:
            return self.last_index()
        after = ents[0].index
        assert after > self.committed, f"truncating committed entry {after} (committed {self.committed})"
        if after == self.offset + len(self.unstable):
            self.unstable.extend(ents)
        elif after <= self.offset:
            # Replaces the whole unstable tail and some stable entries: the storage write of the
            # next Ready truncates the stable conflicting suffix.
            self.offset = after
            self.unstable = list(ents)
        else:
            self.unstable = self.unstable[: after - self.offset] + list(ents)
        return self.last_index()

    def find_conflict(self, ents: list[Entry]) -> int:
        """Index of the first entry whose term differs from ours, or that we lack; 0 if none."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest ``(i, t)`` with ``i <= index`` and ``t <= term`` in our log, for fast
        backtracking (§5.3, "the follower can include the term of the conflicting entry")."""
        while index > 0:
            try:
                t = self.term(index)
            except (Compacted, Unavailable):
                break
            if t <= term:
                return index, t
            index -= 1
        return index, 0

    def maybe_append(self, index: int, log_term: int, committed: int, ents: list[Entry]) -> int | None:
        """Follower side of AppendEntries; returns the new last index, or None on mismatch."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            assert ci > self.committed, f"conflict at {ci} with committed {self.committed}"
            self.append(ents[ci - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, to: int) -> None:
        if to > self.committed:
            assert to <= self.last_index(), f"commit {to} beyond last index {self.last_index()}"
            self.committed = to

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Advance commit to ``max_index`` only if that entry is of the current ``term``
        (Raft paper §5.4.2 / Figure 8)."""
        if max_index > self.committed and self.term_or_zero(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def restore(self, snap: Snapshot) -> None:
        self.committed = snap.index
        self.unstable_snapshot = snap
        self.unstable = []
        self.offset = snap.index + 1

    # ----------------------------------------------------------------- persistence feedback
    def next_committed(self, max_bytes: int = UNLIMITED) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 > lo:
            return self.slice(lo, self.committed + 1, max_bytes)
        return []

    def has_next_committed(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def applied_to(self, i: int) -> None:
        assert self.applied <= i <= self.committed, f"applied {i} outside [{self.applied}, {self.committed}]"
        self.applied = i

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to ``index`` (with ``term``) are persisted: drop them from the tail,
        unless the tail was since replaced by a conflicting append."""
        if index < self.offset or not self.unstable:
            return
        if index >= self.offset + len(self.unstable):
            return
        if self.unstable[index - self.offset].term != term:
            return
        self.unstable = self.unstable[index + 1 - self.offset :]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.unstable_snapshot is not None and self.unstable_snapshot.index == index:
            self.unstable_snapshot = None
