"""A thread for blocking writes that release the GIL (LevelDB's synchronous write batches).

The node's event loop must not stall for a whole fsync, so the ledger's block writes and the Raft
log's writes run on a thread of their own. ``submit`` returns only once that thread has begun the
write. The reason: a thread woken to run Python code waits for the GIL until the running thread
releases it, and a busy event loop does that only every ``sys.getswitchinterval()`` (5 ms by
default, longer than checking a whole block), so without the hand-over a write would sit unstarted
until the loop next blocked, and nothing would overlap with it. Waiting for the start costs one
thread switch.

This module never reorders writes: one thread runs them in submission order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["SyncWriter"]

T = TypeVar("T")


class SyncWriter:
    """One writer thread; ``submit(write)`` returns a Future once ``write`` has started."""

    def __init__(self, name: str = "sync-writer") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def submit(self, write: Callable[[], T]) -> Future[T]:
        started = threading.Event()

        def run() -> T:
            started.set()
            return write()

        fut = self._pool.submit(run)
        started.wait()
        return fut

    def close(self) -> None:
        """Wait for the write in progress, if any, and stop the thread."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> SyncWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
