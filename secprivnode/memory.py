"""Pin the C allocator's tuning when a node starts, so that its resident memory stays bounded.

A node's native memory is mostly LevelDB (block cache, memtables) and short-lived buffers of a
few hundred KB (serialised blocks, write batches, RPC bodies). glibc's malloc adapts its mmap
threshold at run time: mallopt(3) says "the initial value of the threshold is 128*1024, but when
blocks larger than the current threshold and less than or equal to DEFAULT_MMAP_THRESHOLD_MAX are
freed, the threshold is adjusted upward to the size of the freed block", and the trim threshold
follows it at twice that value. After the first freed block buffer, every later one therefore
comes from the ``brk`` heap instead of its own mapping, interleaves with long-lived small objects,
and leaves holes the heap cannot give back: the resident size creeps up under a steady load.
mallopt(3) also says that setting any of M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD or
M_MMAP_MAX disables that dynamic adjustment, which is what :func:`tune_allocator` does.

Only glibc is tuned (through ``ctypes``); on any other C library, or when ``mallopt`` is missing
or refuses a value, the node runs with the allocator's defaults and says so in the log. A value
the operator set through glibc's own environment variables (``MALLOC_ARENA_MAX`` …, or
``GLIBC_TUNABLES``) is left alone.

The price is CPU: a buffer above the threshold is mapped, faulted in page by page and unmapped
each time (about 20% more node CPU per transaction in benchmarks/README.md's paired runs), so the
node calls this only when ``memory.pin_malloc`` is true (the default).

This module must never raise: allocator tuning is an optimisation, never a reason not to start.
It holds no state and starts no threads.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ARENA_MAX",
    "MMAP_THRESHOLD_BYTES",
    "TRIM_THRESHOLD_BYTES",
    "MallocParam",
    "TuningResult",
    "glibc_version",
    "tune_allocator",
]

log = logging.getLogger(__name__)

# Allocations of this size or larger get their own mmap and go back to the kernel on free. 128 KiB
# is glibc's initial value (mallopt(3)); fixing it keeps the node's ~200 KB block buffers, LevelDB's
# block-sized values in its memtable and large RPC bodies out of the heap for the whole run. The
# cost is an mmap, a fault per page and a munmap per such buffer (measured: tens to a couple of
# hundred microseconds for 200 KB; see the module docstring for the node-level figure).
MMAP_THRESHOLD_BYTES = 128 * 1024
# Free memory at the top of the heap beyond this is returned to the kernel on free. glibc serves a
# request of any size from the top chunk when it has room and maps only when the heap would have
# to grow, so a large trim threshold would let block buffers be carved from the heap after all.
# Pinning it at the mmap threshold (glibc's initial value) keeps the top chunk smaller than one
# buffer; the price is a brk call when more than that is freed at the top.
TRIM_THRESHOLD_BYTES = MMAP_THRESHOLD_BYTES
# Most malloc arenas. glibc's default, 8 x cores, gives every thread that ever allocates (LevelDB's
# compaction thread, the asyncio executor's threads, OpenSSL) an arena of its own whose free space
# no other thread can reuse. The node's hot path is one event-loop thread, so two arenas cost no
# lock contention worth measuring and bound that per-thread slack.
ARENA_MAX = 2


@dataclass(frozen=True, slots=True)
class MallocParam:
    """One mallopt(3) parameter: its number in glibc's <malloc.h> and the value the node sets."""

    name: str
    number: int
    value: int
    env: str  # glibc's environment variable for the same parameter
    tunable: str  # its name in GLIBC_TUNABLES


# Numbers from glibc's malloc/malloc.h: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3, M_ARENA_MAX -8.
PARAMS = (
    MallocParam("M_MMAP_THRESHOLD", -3, MMAP_THRESHOLD_BYTES, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold"),
    MallocParam("M_TRIM_THRESHOLD", -1, TRIM_THRESHOLD_BYTES, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),
    MallocParam("M_ARENA_MAX", -8, ARENA_MAX, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
)


@dataclass(frozen=True, slots=True)
class TuningResult:
    """What :func:`tune_allocator` did: parameters set, left to the operator, or refused."""

    applied: tuple[str, ...] = ()
    operator_set: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    skipped_reason: str = ""  # non-empty when nothing was attempted


def glibc_version() -> str | None:
    """The running glibc's version (``"2.36"``), or None on another C library."""
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"; absent elsewhere
    except (ValueError, OSError, AttributeError):
        return None
    if not value or not value.startswith("glibc "):
        return None
    return value.split(" ", 1)[1]


def _operator_set(param: MallocParam, environ: Mapping[str, str]) -> bool:
    if param.env in environ:
        return True
    tunables = environ.get("GLIBC_TUNABLES", "")
    return any(item.split("=", 1)[0] == param.tunable for item in tunables.split(":"))


def _load_libc() -> Any:
    return ctypes.CDLL(None)  # the process's own symbols, libc among them


def tune_allocator(libc: Any = None, environ: Mapping[str, str] | None = None) -> TuningResult:
    """Pin glibc malloc's mmap threshold, trim threshold and arena count; a logged no-op elsewhere.

    ``libc`` and ``environ`` are for tests (default: this process's C library and environment).
    Call it once, early in the node's start-up; it never raises.
    """
    env = os.environ if environ is None else environ
    if libc is None:
        version = glibc_version()
        if version is None:
            return _skip("the C library is not glibc")
        try:
            libc = _load_libc()
        except OSError as exc:
            return _skip(f"cannot load the C library: {exc}")
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return _skip("the C library has no mallopt")
    applied: list[str] = []
    operator: list[str] = []
    refused: list[str] = []
    for p in PARAMS:
        if _operator_set(p, env):
            operator.append(p.name)
            continue
        try:
            ok = mallopt(ctypes.c_int(p.number), ctypes.c_int(p.value))
        except (TypeError, ValueError, OSError, ctypes.ArgumentError):
            ok = 0
        (applied if ok == 1 else refused).append(p.name)  # mallopt returns 1 on success, 0 on error
    result = TuningResult(tuple(applied), tuple(operator), tuple(refused))
    log.info(
        "malloc tuning: set %s%s%s",
        ", ".join(f"{p.name}={p.value}" for p in PARAMS if p.name in applied) or "nothing",
        f"; left to the environment: {', '.join(operator)}" if operator else "",
        f"; refused: {', '.join(refused)}" if refused else "",
    )
    return result


def _skip(reason: str) -> TuningResult:
    log.info("malloc tuning skipped: %s", reason)
    return TuningResult(skipped_reason=reason)
