"""Verify many ECDSA P-256 signatures at once, in-process or across a pool of processes.

Block validation checks hundreds to thousands of signatures (creators and endorsers of every
transaction). One core verifies about 10-20k P-256 signatures a second through OpenSSL, and the
GIL keeps threads from adding more, so batches larger than ``inline_max`` are split into chunks
and sent to a :class:`concurrent.futures.ProcessPoolExecutor`. Only compact bytes cross the
process boundary (SEC1 point, DER signature, message), never key objects.

Results are per item and equal to what :meth:`crypto.signing.Backend.verify` (strict) returns for
each item alone; a malformed item is ``False``, never an exception.

Workers start through ``forkserver`` (``spawn`` where that is missing), which imports the main
module as ``spawn`` does: entry points must keep the ``if __name__ == "__main__"`` guard.

This module must never share key objects across processes, never start processes for small
batches, and never return a result list of a different length than its input.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

from crypto.signing import KeyError_, PublicKey, get_backend

__all__ = ["CHUNKS_PER_WORKER", "CHUNK_MAX", "CHUNK_MIN", "BatchVerifier"]

# A chunk is one task sent to a worker. Below CHUNK_MIN items the pickling and scheduling cost
# per task (~0.1 ms) starts to rival the verification itself (~0.1 ms per signature).
CHUNK_MIN = 32
# Upper bound on one task, so a huge batch never becomes one huge pickle in one pipe write and
# the load still spreads when a worker is slow (other processes share these cores).
CHUNK_MAX = 1024
# Several chunks per worker even out workers that run at different speeds on a shared machine.
CHUNKS_PER_WORKER = 4

_Compact = tuple[bytes | None, bytes, bytes]


def _verify_chunk(backend_name: str, chunk: list[_Compact]) -> list[bool]:
    """Worker side: verify compact items with the named backend (its key cache lives per process)."""
    backend = get_backend(backend_name)
    out: list[bool] = []
    for point, sig, msg in chunk:
        if point is None:
            out.append(False)
            continue
        try:
            key = PublicKey(point)
        except (KeyError_, TypeError):
            out.append(False)
            continue
        out.append(backend.verify(key, sig, msg))
    return out


def _compact(item: Any) -> _Compact:
    """``(point, sig, msg)`` for a well-formed item, ``(None, b"", b"")`` for anything else."""
    try:
        key, sig, msg = item
    except (TypeError, ValueError):
        return (None, b"", b"")
    if not isinstance(key, PublicKey) or not isinstance(sig, bytes) or not isinstance(msg, bytes):
        return (None, b"", b"")
    return (key.point, sig, msg)


class BatchVerifier:
    """Per-item signature verification; large batches fan out over ``workers`` processes."""

    def __init__(self, workers: int | None = None, inline_max: int = 256, backend: str | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError("workers must be at least 1")
        if inline_max < 0:
            raise ValueError("inline_max must not be negative")
        self.workers = workers or os.cpu_count() or 1
        self.inline_max = inline_max
        self.backend_name = get_backend(backend).name
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("BatchVerifier is closed")
        if self._pool is None:
            # forkserver: workers start from a clean single-threaded server, not a fork of a
            # node that may hold threads and OpenSSL locks.
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    def _chunks(self, items: list[_Compact]) -> list[list[_Compact]]:
        size = -(-len(items) // (self.workers * CHUNKS_PER_WORKER))
        size = max(CHUNK_MIN, min(CHUNK_MAX, size))
        return [items[i : i + size] for i in range(0, len(items), size)]

    def verify_many(self, items: Sequence[tuple[PublicKey, bytes, bytes]]) -> list[bool]:
        """``[verify(key, sig, msg) for key, sig, msg in items]``, strict, possibly in parallel."""
        compact = [_compact(item) for item in items]
        if len(compact) <= self.inline_max:
            return _verify_chunk(self.backend_name, compact)
        pool = self._get_pool()
        chunks = self._chunks(compact)
        try:
            futures = [pool.submit(_verify_chunk, self.backend_name, chunk) for chunk in chunks]
            results: list[bool] = []
            for fut in futures:
                results.extend(fut.result())
        except BrokenProcessPool:
            # A worker died (killed by the OS, say). Results must still be exact: verify here
            # and start a fresh pool on the next large batch.
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return _verify_chunk(self.backend_name, compact)
        assert len(results) == len(compact), "a worker returned the wrong number of results"
        return results

    def warm_up(self) -> None:
        """Start the worker processes now rather than on the first large batch."""
        pool = self._get_pool()
        for fut in [pool.submit(_verify_chunk, self.backend_name, []) for _ in range(self.workers)]:
            fut.result()

    def close(self) -> None:
        """Stop the worker processes. Idempotent."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> BatchVerifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
