"""The compiled batch SHA-256 (crypto._sha256native) against hashlib and the pure-Python Merkle
tree, on every compression function this CPU can run, and crypto.hashing's fallback without it."""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import shutil
import sysconfig
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crypto.hashing
import crypto.merkle
from crypto.hashing import digest_ranges, root_of_ranges
from crypto.merkle import leaf_hash

try:
    from crypto import _sha256native as native  # type: ignore[attr-defined]
except ImportError:  # not built here: only the fallback tests run
    native = None

TAG = b"secprivnode/test\x00"


def _impls() -> list[str]:
    if native is None:
        return []
    out = ["portable"]
    try:
        native._use("sha-ni")
        out.append("sha-ni")
    except ValueError:
        pass
    return out


@pytest.fixture(
    scope="module", params=_impls() or [pytest.param("none", marks=pytest.mark.skip("crypto._sha256native not built"))]
)
def nat(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    assert native is not None
    before = native.implementation()
    native._use(request.param)
    assert native.implementation() == request.param
    yield native
    native._use(before)


def _root(digests: list[bytes]) -> bytes:
    """The Merkle root over these leaves by crypto.merkle's hashlib path, which test_merkle.py
    checks against a recursive oracle written from RFC 6962."""
    return crypto.merkle._root([leaf_hash(d) for d in digests])


def test_the_module_is_built_where_a_c_compiler_is() -> None:
    """A build that fails silently would leave the node on the slow path unnoticed."""
    headers = Path(sysconfig.get_paths()["include"], "Python.h").exists()
    if shutil.which("cc") is None or not headers:
        pytest.skip("no C compiler or Python headers here: the extension is optional")
    assert importlib.util.find_spec("crypto._sha256native") is not None


def test_sha256_every_length_across_block_boundaries(nat: ModuleType) -> None:
    data = bytes(range(256)) * 5
    for n in [*range(0, 200), 447, 448, 511, 512, 1000, 1280]:
        assert nat.sha256(data[:n]) == hashlib.sha256(data[:n]).digest(), n
    big = hashlib.sha256(b"seed").digest() * 40_000  # 1.25 MB
    assert nat.sha256(big) == hashlib.sha256(big).digest()
    assert nat.sha256(memoryview(big)[3:70_001]) == hashlib.sha256(big[3:70_001]).digest()


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=3000),
    cuts=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 3000)), max_size=40),
    tag=st.binary(max_size=80),
)
def test_digest_ranges_and_root_of_ranges_match_hashlib(
    nat: ModuleType, data: bytes, cuts: list[tuple[int, int]], tag: bytes
) -> None:
    pairs = [(min(a, b) % (len(data) + 1), max(a, b) % (len(data) + 1)) for a, b in cuts]
    pairs = [(min(s, e), max(s, e)) for s, e in pairs]
    bounds = [i for p in pairs for i in p]
    expected = [hashlib.sha256(tag + data[s:e]).digest() for s, e in pairs]
    assert nat.digest_ranges(tag, data, bounds) == expected
    job = nat.root_of_ranges(tag, data, bounds)
    assert job.root() == _root(expected)
    assert job.result() == (_root(expected), expected)
    assert job.result() == (_root(expected), expected)  # a second result() is the same


@pytest.mark.parametrize(
    ("bounds", "error"),
    [
        ([0, 4], ValueError),
        ([1], ValueError),
        ([2, 1], ValueError),
        ([-1, 2], ValueError),
        (["a", 1], TypeError),
        ([False, True], TypeError),
        ([0, 2**70], ValueError),
    ],
)
def test_bad_bounds_are_refused_before_any_hashing(
    nat: ModuleType, bounds: list[object], error: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(error):
        nat.digest_ranges(TAG, b"abc", bounds)
    with pytest.raises(error):
        nat.root_of_ranges(TAG, b"abc", bounds)
    with pytest.raises(error):
        crypto.hashing.digest_ranges(TAG, b"abc", bounds)  # type: ignore[arg-type]
    monkeypatch.setattr(crypto.hashing, "sha256x", None)  # the fallback refuses the same bounds
    with pytest.raises(error):
        crypto.hashing.digest_ranges(TAG, b"abc", bounds)  # type: ignore[arg-type]
    with pytest.raises(error):
        crypto.hashing.root_of_ranges(TAG, b"abc", bounds)  # type: ignore[arg-type]


def test_a_job_refuses_a_buffer_that_could_change_under_its_thread(
    nat: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TypeError, match="read-only"):
        nat.root_of_ranges(TAG, bytearray(b"abc"), [0, 3])
    assert nat.root_of_ranges(TAG, memoryview(b"abc"), [0, 3]).result()[1] == [hashlib.sha256(TAG + b"abc").digest()]
    monkeypatch.setattr(crypto.hashing, "sha256x", None)
    with pytest.raises(TypeError, match="read-only"):
        root_of_ranges(TAG, bytearray(b"abc"), [0, 3])  # type: ignore[arg-type]


def test_many_threads_may_wait_on_one_job(nat: ModuleType) -> None:
    import threading

    data = bytes(range(256)) * 40_000  # 10 MB: the waiters arrive while the job still runs
    bounds = [0, len(data)] * 8
    expected = hashlib.sha256(TAG + data).digest()
    for _ in range(5):
        job = nat.root_of_ranges(TAG, data, bounds, True)
        got: list[object] = []
        readers = [
            threading.Thread(target=lambda f=f, out=got: out.append(f()))
            for f in (job.result, job.root, job.crc32, job.result)
        ]
        for t in readers:
            t.start()
        for t in readers:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in readers)
        assert len(got) == 4
        assert job.result()[1] == [expected] * 8 and job.crc32() == zlib.crc32(data)


def test_merkle_input_errors(nat: ModuleType) -> None:
    with pytest.raises(TypeError):
        nat.merkle_root([b"a", "b"])
    with pytest.raises(ValueError, match="32-byte"):
        nat.root_of_leaf_hashes([b"\x00" * 32, b"\x00" * 31])


def test_jobs_dropped_unread_are_joined_and_freed(nat: ModuleType) -> None:
    data = bytes(200_000)
    for _ in range(50):
        nat.root_of_ranges(TAG, data, [0, 200_000] * 20)  # freed at once, thread maybe still running
    jobs = [nat.root_of_ranges(TAG, data, [0, 100, 5, 200_000]) for _ in range(20)]
    del jobs
    gc.collect()
    assert nat.root_of_ranges(TAG, data, [0, 10]).result()[1] == [hashlib.sha256(TAG + data[:10]).digest()]


def test_hashing_uses_the_module_only_on_the_sha_extensions() -> None:
    from crypto.native import sha256x

    if sha256x is not None:
        assert sha256x.implementation() == "sha-ni"


def test_fallback_without_the_module_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 12
    bounds = [0, 0, 0, 3072, 10, 700, 64, 128, 3000, 3072]
    with_module = (digest_ranges(TAG, data, bounds), root_of_ranges(TAG, data, bounds).result())
    crc_module = root_of_ranges(TAG, data, bounds, crc32=True).crc32()
    roots = (crypto.merkle.merkle_root([b"a", b"b", b"c"]), crypto.merkle.root_of_leaf_hashes([b"\x11" * 32] * 5))
    monkeypatch.setattr(crypto.hashing, "sha256x", None)
    monkeypatch.setattr(crypto.merkle, "sha256x", None)
    expected = [hashlib.sha256(TAG + data[s:e]).digest() for s, e in zip(bounds[::2], bounds[1::2], strict=True)]
    assert digest_ranges(TAG, data, bounds) == expected == with_module[0]
    assert root_of_ranges(TAG, data, bounds).result() == (_root(expected), expected) == with_module[1]
    assert root_of_ranges(TAG, data, bounds).root() == with_module[1][0]
    assert crypto.merkle.merkle_root([b"a", b"b", b"c"]) == roots[0] == _root([b"a", b"b", b"c"])
    assert crypto.merkle.root_of_leaf_hashes([b"\x11" * 32] * 5) == roots[1]
    fallback = root_of_ranges(TAG, data, bounds, crc32=True)
    assert fallback.crc32() == crc_module == zlib.crc32(data)
    with pytest.raises(ValueError, match="without crc"):
        root_of_ranges(TAG, data, bounds).crc32()
    with pytest.raises(ValueError):
        digest_ranges(TAG, data, [0, 5000])
    with pytest.raises(ValueError):
        root_of_ranges(TAG, data, [3])


def test_a_forked_child_neither_waits_for_nor_reads_the_parents_job(nat: ModuleType) -> None:
    import os

    job = nat.root_of_ranges(TAG, bytes(500_000), [0, 500_000] * 10)
    pid = os.fork()
    if pid == 0:  # the child: no such thread here; result() refuses, freeing the job does not hang
        code = 1
        try:
            job.result()
        except RuntimeError:
            code = 0
        del job
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert job.result()[1][0] == hashlib.sha256(TAG + bytes(500_000)).digest()


def test_crc32_matches_zlib_at_every_length_and_alignment(nat: ModuleType) -> None:
    """The carry-less-multiply folding handles 64-byte runs, then 16-byte blocks, then a table tail."""

    data = hashlib.sha256(b"crc").digest() * 200
    for n in [*range(0, 200), 255, 256, 257, 1023, 4096, 6000]:
        for off in (0, 1, 7):
            piece = data[off : off + n]
            assert nat.crc32(piece) == zlib.crc32(piece), (n, off)
            job = nat.root_of_ranges(TAG, piece, [0, len(piece)], True)
            assert job.crc32() == zlib.crc32(piece)
    with pytest.raises(ValueError, match="without crc"):
        nat.root_of_ranges(TAG, data, []).crc32()


def test_crc32_is_zlibs_with_and_without_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    data = hashlib.sha256(b"block").digest() * 30_000
    assert crypto.hashing.crc32(data) == zlib.crc32(data)
    assert crypto.hashing.crc32(memoryview(data)[5:70_001]) == zlib.crc32(data[5:70_001])
    monkeypatch.setattr(crypto.hashing, "sha256x", None)
    assert crypto.hashing.crc32(data) == zlib.crc32(data)
