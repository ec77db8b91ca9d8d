"""The key-value layer: one LevelDB database (plyvel) per node, split into keyspaces by prefix.

Every channel's ledger lives under its own prefix (see :mod:`storage.keys`); this module knows
nothing of what the keys mean. It opens the database with the options the ledger relies on
(``paranoid_checks`` so LevelDB refuses a damaged log or table on open, a Bloom filter so the
duplicate-tx-id and MVCC version probes of absent keys rarely touch disk) and stamps a format
version so that a future layout change is detected instead of misread.

This module must never interpret ledger keys or values, and never write without ``sync=True``
where durability is promised (that choice belongs to the caller's write batch).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import plyvel

from storage.errors import CorruptionError, DatabaseLocked, StorageError

__all__ = [
    "BLOCK_CACHE_BYTES",
    "BLOCK_CACHE_BYTES_MIN",
    "BLOOM_BITS_PER_KEY",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "MAX_FILE_BYTES",
    "MAX_OPEN_FILES",
    "MAX_OPEN_FILES_MAX",
    "MAX_OPEN_FILES_MIN",
    "WRITE_BUFFER_BYTES",
    "WRITE_BUFFER_BYTES_MAX",
    "WRITE_BUFFER_BYTES_MIN",
    "Database",
    "check_cache_options",
]

# The database-wide format stamp. The key starts with 0x00, which no channel prefix does.
FORMAT_KEY = b"\x00format"
FORMAT_VERSION = b"secprivnode-ledger/1"

# LevelDB's read cache (uncompressed table blocks), the largest part of the node's native memory
# that a setting bounds. The hot reads are Bloom-filtered probes of absent keys (duplicate tx ids)
# and recent blocks, which the OS page cache also holds (LevelDB maps its table files). 16 MiB
# instead of 64 (with the 8 MiB memtable below): 10-20 MB less RSS per node in 200k-transaction
# runs; a throughput cost, if any, was within the shared machine's noise (benchmarks/README.md,
# memory section). Configurable: ``storage.block_cache_bytes``.
BLOCK_CACHE_BYTES = 16 * 1024 * 1024
# Memtable size. LevelDB holds up to two (the one being written and the one being flushed), so it
# counts twice towards resident memory. 8 MiB, the table file size below, flushes one table file
# at a time; a block larger than that (up to BatchConfig.absolute_max_bytes, 10 MiB) is still
# written as one batch, the memtable just switches after it. Configurable:
# ``storage.write_buffer_bytes``.
WRITE_BUFFER_BYTES = 8 * 1024 * 1024
# 10 bits per key gives about a 1% false-positive rate (LevelDB's doc/index.md recommendation).
BLOOM_BITS_PER_KEY = 10
# Table file size. LevelDB's default (2 MiB) makes a ledger of tens of GB tens of thousands of
# files; 8 MiB tables keep a 1M-transaction ledger (~0.7 GB) in under a hundred, all of them in the
# table cache, so an absent-key probe costs Bloom-filter checks, not a table open.
MAX_FILE_BYTES = 8 * 1024 * 1024
# Table files LevelDB may keep open: 500 x 8 MiB keeps ~4 GB of tables cached, and leaves half of
# the usual 1024-descriptor limit to the node's sockets.
MAX_OPEN_FILES = 500

# LevelDB silently clips these options to its own ranges (SanitizeOptions in db/db_impl.cc); the
# node rejects a value outside them instead, so that the database runs with what was configured.
WRITE_BUFFER_BYTES_MIN = 64 * 1024
WRITE_BUFFER_BYTES_MAX = 1024 * 1024 * 1024
MAX_OPEN_FILES_MIN = 74  # 64 table files + the 10 LevelDB keeps for its log, manifest and lock
MAX_OPEN_FILES_MAX = 50_000
# A block cache smaller than one table block (4 KiB) caches nothing; LevelDB has no lower bound.
BLOCK_CACHE_BYTES_MIN = 4 * 1024


def check_cache_options(block_cache_bytes: int, write_buffer_bytes: int, max_open_files: int) -> None:
    """Raise :class:`ValueError` naming the first LevelDB memory option outside its range."""
    if block_cache_bytes < BLOCK_CACHE_BYTES_MIN:
        raise ValueError(f"block_cache_bytes: must be >= {BLOCK_CACHE_BYTES_MIN}, got {block_cache_bytes}")
    if not WRITE_BUFFER_BYTES_MIN <= write_buffer_bytes <= WRITE_BUFFER_BYTES_MAX:
        raise ValueError(
            f"write_buffer_bytes: must be in [{WRITE_BUFFER_BYTES_MIN}, {WRITE_BUFFER_BYTES_MAX}], "
            f"got {write_buffer_bytes}"
        )
    if not MAX_OPEN_FILES_MIN <= max_open_files <= MAX_OPEN_FILES_MAX:
        raise ValueError(
            f"max_open_files: must be in [{MAX_OPEN_FILES_MIN}, {MAX_OPEN_FILES_MAX}], got {max_open_files}"
        )


class Database:
    """A node's LevelDB database. ``raw`` is the plyvel handle; ``prefixed`` a keyspace view."""

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        block_cache_bytes: int = BLOCK_CACHE_BYTES,
        write_buffer_bytes: int = WRITE_BUFFER_BYTES,
        max_open_files: int = MAX_OPEN_FILES,
    ) -> None:
        """Open (or create) the database; the sizes bound LevelDB's own memory (see the constants)."""
        check_cache_options(block_cache_bytes, write_buffer_bytes, max_open_files)
        self.path = Path(path)
        try:
            if create:
                self.path.mkdir(parents=True, exist_ok=True)  # LevelDB creates only the leaf
            self.raw: Any = plyvel.DB(
                str(self.path),
                create_if_missing=create,
                paranoid_checks=True,
                lru_cache_size=block_cache_bytes,
                write_buffer_size=write_buffer_bytes,
                bloom_filter_bits=BLOOM_BITS_PER_KEY,
                max_open_files=max_open_files,
                max_file_size=MAX_FILE_BYTES,
            )
        except plyvel.CorruptionError as exc:
            raise CorruptionError(f"LevelDB at {self.path} is corrupt: {exc}") from exc
        except (plyvel.Error, OSError) as exc:
            # LevelDB reports a held lock only in its message ("IO error: lock .../LOCK: ...").
            if "/LOCK" in str(exc) or "lock " in str(exc).lower():
                raise DatabaseLocked(f"LevelDB at {self.path} is in use by another process (its LOCK is held)") from exc
            raise StorageError(f"cannot open LevelDB at {self.path}: {exc}") from exc
        self._check_format(create)

    def _check_format(self, create: bool) -> None:
        stamp = self.raw.get(FORMAT_KEY)
        if stamp is None:
            if not create and self._has_any_key():
                self.raw.close()
                raise CorruptionError(f"{self.path}: database has data but no format stamp")
            self.raw.put(FORMAT_KEY, FORMAT_VERSION, sync=True)
        elif stamp != FORMAT_VERSION:
            self.raw.close()
            raise StorageError(f"{self.path}: unsupported storage format {stamp!r} (expected {FORMAT_VERSION!r})")

    def _has_any_key(self) -> bool:
        with self.raw.iterator(include_value=False) as it:
            return next(it, None) is not None

    def prefixed(self, prefix: bytes) -> Any:
        """A plyvel view of the keyspace under ``prefix`` (keys are given without it)."""
        return self.raw.prefixed_db(prefix)

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)

    def close(self) -> None:
        if not self.raw.closed:
            self.raw.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
