"""Typed errors of the storage layer.

* :class:`CorruptionError`: stored bytes fail their checks (checksum, canonical decoding, index
  consistency). Corrupt data is never returned to a caller; the read raises instead.
* :class:`ChainError`: a block does not extend the chain (wrong number, previous hash, Merkle
  root, channel or orderer signature). Raised by ``commit`` before anything is written, and by
  ``verify_chain`` when a stored block breaks the chain.
* :class:`NotFound`: the block, transaction or blob does not exist. It is also a ``KeyError``, so
  mapping-style callers can catch that.

This module must never import anything but the standard library.
"""

from __future__ import annotations

__all__ = ["BlobTooLarge", "ChainError", "CorruptionError", "DatabaseLocked", "NotFound", "StorageError"]


class StorageError(Exception):
    """Base class of every storage error. ``height`` names the block concerned, when there is one."""

    def __init__(self, message: str, *, height: int | None = None) -> None:
        super().__init__(message)
        self.height = height


class CorruptionError(StorageError):
    """Stored data failed a check; it is not served."""


class DatabaseLocked(StorageError):
    """Another process (a running node) holds the database's lock: LevelDB allows one at a time."""


class NotFound(StorageError, KeyError):
    """The requested item is not stored."""

    def __str__(self) -> str:  # KeyError.__str__ would repr() the message
        return str(self.args[0]) if self.args else ""


class ChainError(StorageError):
    """A block that does not extend the tip, or a stored block that breaks the chain."""


class BlobTooLarge(StorageError):
    """A blob exceeded the store's ``max_blob_bytes``; nothing was kept."""
