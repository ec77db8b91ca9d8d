"""BlobStore: streaming put/get of multi-MB blobs, size limit, corruption detection and GC."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.blobstore import BlobStore
from storage.errors import BlobTooLarge, CorruptionError, NotFound, StorageError


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def chunks(seed: int, n: int, size: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for _ in range(n):
        yield rng.randbytes(size)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> BlobStore:
    return BlobStore(tmp_path / "blobs", max_blob_bytes=8 * 1024 * 1024, chunk_bytes=256 * 1024, clock=clock)


def test_small_put_get(store: BlobStore) -> None:
    d = store.put(b"ciphertext")
    assert d == hashlib.sha256(b"ciphertext").digest()
    assert store.has(d) and store.size(d) == 10
    assert store.get(d) == b"ciphertext"
    assert store.put(b"ciphertext") == d  # idempotent
    assert store.path_of(d).name == d.hex()
    assert store.path_of(d).parent.name == d.hex()[2:4]


def test_empty_blob(store: BlobStore) -> None:
    d = store.put(b"")
    assert store.get(d) == b"" and store.size(d) == 0


def test_stream_multi_megabyte(store: BlobStore) -> None:
    expect = hashlib.sha256()
    for c in chunks(1, 24, 300_000):  # 7.2 MB in odd-sized chunks
        expect.update(c)
    d = store.put_stream(chunks(1, 24, 300_000))
    assert d == expect.digest()
    assert store.size(d) == 24 * 300_000
    got = hashlib.sha256()
    sizes = []
    for c in store.open_stream(d):
        sizes.append(len(c))
        got.update(c)
    assert got.digest() == d
    assert max(sizes) == store.chunk_bytes  # streamed in bounded chunks, never whole
    assert list(store.digests()) == [d]


def test_over_limit_is_refused_and_cleaned(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(BlobTooLarge):
        store.put_stream(chunks(2, 40, 256 * 1024))  # 10 MiB > 8 MiB
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert list(store.digests()) == []
    exact = store.put_stream(chunks(3, 32, 256 * 1024))  # exactly the limit is fine
    assert store.size(exact) == 8 * 1024 * 1024


def test_failing_source_leaves_nothing(store: BlobStore, tmp_path: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield b"x" * 1000
        raise OSError("upload connection lost")

    with pytest.raises(OSError):
        store.put_stream(broken())
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_corrupted_blob_is_detected(store: BlobStore) -> None:
    d = store.put_stream(chunks(4, 4, 200_000))
    p = store.path_of(d)
    os.chmod(p, 0o644)
    with open(p, "r+b") as f:
        f.seek(500_000)
        b = f.read(1)
        f.seek(500_000)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(CorruptionError):
        for _ in store.open_stream(d):
            pass
    with pytest.raises(CorruptionError):
        store.get(d)


def test_missing_and_bad_digests(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        store.open_stream(b"\x00" * 32)
    with pytest.raises(NotFound):
        store.size(b"\x00" * 32)
    assert not store.has(b"\x00" * 32)
    assert not store.delete(b"\x00" * 32)
    with pytest.raises(StorageError):
        store.has(b"short")


def test_delete(store: BlobStore) -> None:
    d = store.put(b"gone soon")
    assert store.delete(d)
    assert not store.has(d)


def test_collect_keeps_referenced_and_young(store: BlobStore, clock: Clock, tmp_path: Path) -> None:
    old_ref = store.put(b"old referenced")
    old_unref = store.put(b"old unreferenced")
    stale_tmp = tmp_path / "blobs" / "tmp" / f"{int(clock.t)}-deadbeef.part"
    stale_tmp.write_bytes(b"half an upload")
    clock.t += store.grace_s + 1
    young = store.put(b"young unreferenced")
    fresh_tmp = tmp_path / "blobs" / "tmp" / f"{int(clock.t)}-cafe.part"
    fresh_tmp.write_bytes(b"upload in progress")
    assert store.collect({old_ref}) == 2  # old_unref and the stale temp file
    assert store.has(old_ref) and store.has(young) and not store.has(old_unref)
    assert fresh_tmp.exists() and not stale_tmp.exists()
    clock.t += store.grace_s + 1
    assert store.collect(set()) == 3
    assert list(store.digests()) == []
