"""A thread for blocking writes that release the GIL (LevelDB's synchronous write batches).

The node's event loop must not stall for a whole fsync, so the ledger's block writes and the Raft
log's writes run on a thread of their own. ``submit`` returns only once that thread has begun the
write. The reason: a thread woken to run Python code waits for the GIL until the running thread
releases it, and a busy event loop does that only every ``sys.getswitchinterval()`` (5 ms by
default, longer than checking a whole block), so without the hand-over a write would sit unstarted
until the loop next blocked, and nothing would overlap with it. Waiting for the start costs one
thread switch.

This module never reorders writes: one thread runs them in submission order.

**A refused write stops the writing.** When LevelDB refuses a write (disk full, I/O error), the
write may have left a partial record in its log; a later write on the same handle appends after
it, and the next open then fails with "Corruption: checksum mismatch" (found by the disk-full
fault test). A closed-and-reopened database skips the partial tail. So a refused write goes to the
process's write-failure handler (:func:`set_write_failure_handler`; the node's logs and exits at
once, and its restart reopens the database), and without a handler it is re-raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import plyvel

__all__ = ["SyncWriter", "set_write_failure_handler"]

T = TypeVar("T")

# Called (on the writer thread) with the error of a refused write; it must not return to writing.
_failure_handler: Callable[[BaseException], None] | None = None


def set_write_failure_handler(handler: Callable[[BaseException], None] | None) -> None:
    """Install what runs when the database refuses a write (the node: log the reason, exit)."""
    global _failure_handler
    _failure_handler = handler


class SyncWriter:
    """One writer thread; ``submit(write)`` returns a Future once ``write`` has started."""

    def __init__(self, name: str = "sync-writer") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def submit(self, write: Callable[[], T]) -> Future[T]:
        started = threading.Event()

        def run() -> T:
            started.set()
            try:
                return write()
            except plyvel.Error as exc:
                if _failure_handler is not None:
                    _failure_handler(exc)
                raise

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
