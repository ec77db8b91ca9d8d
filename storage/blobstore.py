"""The off-chain blob store: encrypted payloads kept on disk, named by the SHA-256 of their bytes.

Only a blob's hash and metadata go on chain; the ciphertext lives here. A blob's name is the plain
SHA-256 (FIPS 180-4) of its bytes in hex, so anyone holding the on-chain hash can check a download
with any SHA-256 tool. Layout under the root (documented in docs/storage.md):

    <root>/objects/ab/cd/abcd...(64 hex digits)    one file per blob, read-only once renamed
    <root>/tmp/<created>-<random>.part              blobs being written

Writes stream to a temp file while hashing and counting, then ``fsync`` the file, rename it into
place (``os.replace`` is atomic on POSIX) and ``fsync`` the directory, so a crash leaves either the
whole blob under its name or a stray temp file that :meth:`BlobStore.collect` removes. Reads stream
in chunks and re-hash; a mismatch raises :class:`CorruptionError` at the end of the stream, and
the caller (who has not yet acted on the data) discards what it got.

This module must never hold a multi-megabyte blob whole in memory in the streaming paths, never
expose a partly written blob under its name, and never read the wall clock except through the
injected ``clock``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from storage.errors import BlobTooLarge, CorruptionError, NotFound, StorageError

__all__ = [
    "CHUNK_BYTES",
    "GC_GRACE_S",
    "MAX_BLOB_BYTES",
    "SMALL_BLOB_MAX_BYTES",
    "BlobStore",
    "BlobWriter",
    "DigestMismatch",
]

# Largest blob accepted: scanner captures and documents of a city service are tens of MB; 256 MiB
# leaves room for video snippets while bounding the disk one upload can take.
MAX_BLOB_BYTES = 256 * 1024 * 1024
# Streaming granularity: 1 MiB keeps memory per transfer small and syscalls few.
CHUNK_BYTES = 1024 * 1024
# get()/put() hold the blob in memory; above this size callers must stream.
SMALL_BLOB_MAX_BYTES = 16 * 1024 * 1024
# A blob is uploaded before the transaction that references it is ordered and committed; a day
# covers any realistic delay between the two, after which an unreferenced blob is garbage.
GC_GRACE_S = 24 * 3600.0

_DIGEST_LEN = 32


def _check_digest(digest: bytes) -> str:
    if type(digest) is not bytes or len(digest) != _DIGEST_LEN:
        raise StorageError("a blob digest is 32 bytes of SHA-256")
    return digest.hex()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Content-addressed blob files under ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        max_blob_bytes: int = MAX_BLOB_BYTES,
        chunk_bytes: int = CHUNK_BYTES,
        grace_s: float = GC_GRACE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_blob_bytes <= 0 or chunk_bytes <= 0:
            raise ValueError("max_blob_bytes and chunk_bytes must be positive")
        self.root = Path(path)
        self.max_blob_bytes = max_blob_bytes
        self.chunk_bytes = chunk_bytes
        self.grace_s = grace_s
        self._clock = clock
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path_of(self, digest: bytes) -> Path:
        h = _check_digest(digest)
        return self._objects / h[:2] / h[2:4] / h

    # -- writing --------------------------------------------------------------------------------

    def writer(self) -> BlobWriter:
        """An incremental upload (chunks arrive over the network): ``write`` them, then ``commit``."""
        # The creation time is in the name (on the injected clock) so collect() can age temp files
        # without trusting mtimes, which writes keep moving.
        return BlobWriter(self, self._tmp / f"{int(self._clock())}-{secrets.token_hex(8)}.part")

    def put_stream(self, chunks: Iterable[bytes]) -> bytes:
        """Store the concatenation of ``chunks``; return its SHA-256. Over the limit: BlobTooLarge."""
        w = self.writer()
        try:
            for chunk in chunks:
                w.write(chunk)
            return w.commit()
        except BaseException:
            w.abort()
            raise

    def _install(self, tmp: Path, digest: bytes) -> None:
        final = self.path_of(digest)
        if final.exists():  # same content already stored: keep the existing file
            tmp.unlink()
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        now = self._clock()
        os.utime(tmp, (now, now))  # the blob's age for collect() is measured on the injected clock
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    def read_at(self, digest: bytes, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes of a blob from ``offset`` (empty past the end), for chunked transfer.
        The receiver checks the whole blob's hash; this read does not."""
        if offset < 0 or limit <= 0:
            raise StorageError("offset must be >= 0 and limit > 0")
        with self._open(digest) as f:
            f.seek(offset)
            return f.read(min(limit, self.chunk_bytes))

    def put(self, data: bytes) -> bytes:
        if len(data) > SMALL_BLOB_MAX_BYTES:
            raise StorageError(f"put() takes blobs up to {SMALL_BLOB_MAX_BYTES} bytes; use put_stream")
        return self.put_stream(data[i : i + self.chunk_bytes] for i in range(0, len(data), self.chunk_bytes))

    # -- reading --------------------------------------------------------------------------------

    def _open(self, digest: bytes) -> BinaryIO:
        try:
            return open(self.path_of(digest), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest.hex()} is not stored") from exc

    def open_stream(self, digest: bytes) -> Iterator[bytes]:
        """The blob in chunks of ``chunk_bytes``; CorruptionError after the last chunk if the bytes
        do not hash to ``digest``. NotFound is raised by this call, not by the first ``next``."""
        f = self._open(digest)
        return self._stream(f, digest)

    def _stream(self, f: BinaryIO, digest: bytes) -> Iterator[bytes]:
        h = hashlib.sha256()
        with f:
            while chunk := f.read(self.chunk_bytes):
                h.update(chunk)
                yield chunk
        if h.digest() != digest:
            raise CorruptionError(f"blob {digest.hex()} does not match its hash")

    def get(self, digest: bytes) -> bytes:
        """A small blob whole, verified; larger ones must be read with :meth:`open_stream`."""
        size = self.size(digest)
        if size > SMALL_BLOB_MAX_BYTES:
            raise StorageError(f"blob of {size} bytes is too large for get(); use open_stream")
        return b"".join(self.open_stream(digest))

    def has(self, digest: bytes) -> bool:
        return self.path_of(digest).is_file()

    def size(self, digest: bytes) -> int:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest.hex()} is not stored") from exc

    def digests(self) -> Iterator[bytes]:
        """Every stored blob's digest (order unspecified)."""
        for top in self._objects.iterdir():
            for mid in top.iterdir():
                for f in mid.iterdir():
                    if len(f.name) == 2 * _DIGEST_LEN:
                        yield bytes.fromhex(f.name)

    # -- removal --------------------------------------------------------------------------------

    def delete(self, digest: bytes) -> bool:
        """Remove a blob; False if it was not there."""
        try:
            self.path_of(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def collect(self, referenced: Collection[bytes]) -> int:
        """Remove blobs not in ``referenced`` and older than the grace period, and stale temp
        files; return how many files were removed."""
        cutoff = self._clock() - self.grace_s
        removed = 0
        for digest in list(self.digests()):
            if digest in referenced:
                continue
            p = self.path_of(digest)
            try:
                if p.stat().st_mtime <= cutoff:
                    p.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        for tmp in self._tmp.iterdir():
            born, _, _ = tmp.name.partition("-")
            if born.isdigit() and int(born) <= cutoff:
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed


class BlobWriter:
    """A blob being written: hashed and counted as it goes, installed only by :meth:`commit`."""

    def __init__(self, store: BlobStore, tmp: Path) -> None:
        self._store = store
        self._tmp = tmp
        self._f: BinaryIO | None = open(tmp, "xb")  # noqa: SIM115 - closed by commit/abort
        self._h = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        if self._f is None:
            raise StorageError("blob writer is closed")
        self.size += len(chunk)
        if self.size > self._store.max_blob_bytes:
            raise BlobTooLarge(f"blob exceeds the limit of {self._store.max_blob_bytes} bytes")
        self._h.update(chunk)
        self._f.write(chunk)

    def commit(self, expected: bytes | None = None) -> bytes:
        """Sync and install the blob under its SHA-256; DigestMismatch (nothing kept) if it is not
        ``expected``."""
        f = self._f
        if f is None:
            raise StorageError("blob writer is closed")
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            self._f = None
            digest = self._h.digest()
            if expected is not None and digest != expected:
                raise DigestMismatch(f"the bytes hash to {digest.hex()}, not {expected.hex()}")
            self._store._install(self._tmp, digest)
        except BaseException:
            self.abort()
            raise
        return digest

    def abort(self) -> None:
        """Drop what was written (idempotent)."""
        if self._f is not None:
            self._f.close()
            self._f = None
        self._tmp.unlink(missing_ok=True)


class DigestMismatch(StorageError):
    """An upload's bytes do not hash to the digest it was announced under."""
