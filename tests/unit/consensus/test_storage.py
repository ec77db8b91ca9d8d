"""MemoryStorage and LevelDBStorage behave the same, and LevelDB recovers everything on reopen."""

from __future__ import annotations

import random
from pathlib import Path

import plyvel
import pytest

from consensus.raft import Compacted, ConfState, Entry, HardState, MemoryStorage, Snapshot, Unavailable, leveldb_storage
from consensus.raft.leveldb_storage import LevelDBStorage

CS = ConfState(("a", "b", "c"), ("d",))


def view(s: MemoryStorage | LevelDBStorage) -> tuple[object, ...]:
    first, last = s.first_index(), s.last_index()
    ents = s.entries(first, last + 1, 1 << 30) if last >= first else []
    return (s.initial_state(), s.snapshot(), first, last, s.term(first - 1), ents)


def random_ops(rng: random.Random, stores: list[MemoryStorage | LevelDBStorage], n: int) -> None:
    term = 1
    for _ in range(n):
        ref = stores[0]
        op = rng.random()
        if op < 0.6:
            # Append, possibly overwriting a suffix (the follower's conflict truncation).
            lo = rng.randint(max(ref.first_index(), ref.last_index() - 3), ref.last_index() + 1)
            term += rng.random() < 0.3
            ents = [Entry(term, lo + i, data=rng.randbytes(rng.randint(0, 20))) for i in range(rng.randint(1, 5))]
            hs = HardState(term, "a", min(ents[-1].index, ref.snapshot().index + 1))
            for s in stores:
                s.save(hs, ents, None)
        elif op < 0.75 and ref.last_index() > ref.snapshot().index:
            i = rng.randint(ref.snapshot().index + 1, ref.last_index())
            for s in stores:
                s.create_snapshot(i, CS, b"state-%d" % i)
        elif op < 0.85 and ref.snapshot().index >= ref.first_index():
            i = rng.randint(ref.first_index(), ref.snapshot().index)
            for s in stores:
                s.compact(i)
        elif op < 0.9:
            snap = Snapshot(ref.last_index() + rng.randint(1, 5), term, CS, b"remote")
            for s in stores:
                s.save(HardState(term, "", snap.index), [], snap)
        assert view(stores[0]) == view(stores[1])


@pytest.mark.parametrize("seed", range(8))
def test_leveldb_matches_memory_and_survives_reopen(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    mem, ldb = MemoryStorage(), LevelDBStorage(db, "ch1")
    random_ops(rng, [mem, ldb], 120)
    db.close()
    db = plyvel.DB(str(tmp_path / "db"))
    reopened = LevelDBStorage(db, "ch1")
    assert view(reopened) == view(mem)
    # Channels are separate keyspaces.
    assert LevelDBStorage(db, "other").last_index() == 0
    db.close()


@pytest.mark.parametrize("make", ["mem", "ldb"])
def test_errors(tmp_path: Path, make: str) -> None:
    if make == "mem":
        s: MemoryStorage | LevelDBStorage = MemoryStorage()
    else:
        s = LevelDBStorage(plyvel.DB(str(tmp_path / "db"), create_if_missing=True), "c")
    s.save(HardState(2, "a", 3), [Entry(1, i) for i in range(1, 6)], None)
    s.create_snapshot(3, CS, b"s")
    s.compact(3)
    with pytest.raises(Compacted):
        s.term(2)
    with pytest.raises(Compacted):
        s.entries(3, 5, 100)
    with pytest.raises(Unavailable):
        s.term(6)
    with pytest.raises(Unavailable):
        s.create_snapshot(9, CS, b"")
    with pytest.raises(Compacted):
        s.create_snapshot(2, CS, b"")
    assert s.term(3) == 1 and s.first_index() == 4
    # max_bytes cuts but returns at least one entry.
    assert len(s.entries(4, 6, 1)) == 1


def test_prepared_save_is_invisible_until_finished(tmp_path: Path) -> None:
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        s = LevelDBStorage(db, "city")
        s.save(HardState(1, "a", 0), [Entry(1, 1, data=b"x"), Entry(1, 2, data=b"y")], None)
        before = view(s)
        pending = s.prepare_save(HardState(2, "a", 2), [Entry(2, 2, data=b"z"), Entry(2, 3, data=b"w")], None)
        assert view(s) == before  # encoded, nothing written or shown yet
        with pytest.raises(AssertionError):
            pending.finish()  # not durable yet
        with pytest.raises(AssertionError):
            s.prepare_save(None, [], None)  # one prepared save at a time
        pending.write()
        pending.finish()
        assert s.last_index() == 3 and s.term(2) == 2 and s.hard_state() == HardState(2, "a", 2)
        assert [e.data for e in s.entries(1, 4, 1 << 20)] == [b"x", b"z", b"w"]
        shown = view(s)
        db.close()
        db = plyvel.DB(str(tmp_path / "db"))
        assert view(LevelDBStorage(db, "city")) == shown  # what finish() shows is what is on disk
    finally:
        db.close()


def test_term_lookups_survive_truncation_and_reopen(tmp_path: Path) -> None:
    """Terms of recent entries are answered from memory; they must follow overwrites exactly."""
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        s = LevelDBStorage(db, "city")
        s.save(HardState(1, "a", 0), [Entry(1, i) for i in range(1, 6)], None)
        assert [s.term(i) for i in range(1, 6)] == [1] * 5
        s.save(HardState(3, "b", 0), [Entry(3, 3), Entry(3, 4)], None)  # conflict: 5 is deleted
        assert [s.term(i) for i in range(1, 5)] == [1, 1, 3, 3]
        with pytest.raises(Unavailable):
            s.term(5)
        db.close()
        db = plyvel.DB(str(tmp_path / "db"))
        r = LevelDBStorage(db, "city")
        assert [r.term(i) for i in range(1, 5)] == [1, 1, 3, 3]
    finally:
        db.close()


@pytest.mark.parametrize("seed", range(4))
def test_small_caches_still_match_memory(tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With caches of a few entries, eviction runs all the time: answers must not change."""
    monkeypatch.setattr(leveldb_storage, "ENTRY_CACHE_BYTES", 60)
    monkeypatch.setattr(leveldb_storage, "TERM_CACHE_MAX", 3)
    rng = random.Random(100 + seed)
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        mem, ldb = MemoryStorage(), LevelDBStorage(db, "ch1")
        random_ops(rng, [mem, ldb], 150)
        assert len(ldb._cache) <= 3 and len(ldb._terms) <= 3
    finally:
        db.close()


def test_recent_entries_are_served_without_reading_the_disk(tmp_path: Path) -> None:
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        s = LevelDBStorage(db, "city")
        ents = [Entry(1, i, data=b"block-%d" % i) for i in range(1, 6)]
        s.save(HardState(1, "a", 0), ents, None)
        s._db = None  # any disk read would now fail
        assert s.entries(2, 6, 1 << 20) == ents[1:] and s.term(5) == 1
    finally:
        db.close()


def test_only_a_commit_index_change_is_written_without_fsync(tmp_path: Path) -> None:
    """currentTerm, votedFor and the log are synced; commitIndex is volatile (Raft Figure 2)."""
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        s = LevelDBStorage(db, "city")

        def blocking(hard: HardState | None, ents: list[Entry], snap: Snapshot | None = None) -> bool:
            pending = s.prepare_save(hard, ents, snap)
            pending.write()
            pending.finish()
            return pending.blocking

        assert blocking(HardState(1, "a", 0), [Entry(1, 1)])  # entries
        assert not blocking(HardState(1, "a", 1), [])  # commit only
        assert blocking(HardState(2, "a", 1), [])  # new term
        assert blocking(HardState(2, "b", 1), [])  # new vote
        assert blocking(HardState(2, "b", 1), [Entry(2, 2)])  # entries with an unchanged hard state
        assert blocking(HardState(2, "b", 2), [], Snapshot(5, 2, CS, b"s"))  # a snapshot
        assert not blocking(HardState(2, "b", 5), [])
        db.close()
        db = plyvel.DB(str(tmp_path / "db"))
        assert LevelDBStorage(db, "city").hard_state() == HardState(2, "b", 5)  # written all the same
    finally:
        db.close()
