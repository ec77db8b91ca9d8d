"""The compiled batch SHA-256 (``crypto/_sha256native.c``), where it is built and pays off.

``sha256x`` is that module when it imported and runs on the x86 SHA extensions, else None, and
callers (:func:`crypto.hashing.digest_ranges`, :mod:`crypto.merkle`) then hash with ``hashlib``.
Its portable compression function is slower than OpenSSL's, so it is never chosen here; the tests
still check it. ``SECPRIVNODE_NATIVE_HASH=0`` turns the module off, to measure without it.

This module must never make the module a requirement: an import failure means "not available".
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["ENV", "describe", "sha256x"]

ENV = "SECPRIVNODE_NATIVE_HASH"


def _load() -> ModuleType | None:
    if os.environ.get(ENV, "1") == "0":
        return None
    try:
        from crypto import _sha256native as mod  # type: ignore[attr-defined]
    except ImportError:
        return None
    return mod if mod.implementation() == "sha-ni" else None


sha256x = _load()


def describe() -> str:
    """Which batch hashing is in use, for benchmark reports."""
    return "crypto._sha256native (x86 SHA extensions)" if sha256x is not None else "hashlib"
