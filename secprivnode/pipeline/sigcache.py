"""A bounded cache of signatures that verified, so a node checks each one only once.

Signatures reach a node more than once: it verifies a creator's signature when endorsing and
again when the transaction comes back in a block; it produces endorsements it later validates;
gossip can deliver a block twice. The cache remembers successful verifications by the SHA-256 of
(public key, signature, message); a hit is as good as verifying, because ECDSA verification is a
pure function of those three. Failures are never cached (an attacker could otherwise fill the
cache with garbage, and a failure is cheap to reproduce).

This module never caches a result it did not see succeed, and never grows past its limit.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from crypto.signing import PublicKey

__all__ = ["SIGCACHE_MAX", "SigCache", "Verifier"]

# A full block carries about 2000 signatures (500 txs x (1 creator + ~3 endorsers)); 65536 entries
# remember the last ~30 blocks' worth, far more than the window between endorsing a proposal and
# validating its block. At roughly 100 bytes per entry that is under 10 MiB.
SIGCACHE_MAX = 65_536


class Verifier(Protocol):
    """What the cache needs from :class:`crypto.batch.BatchVerifier`."""

    def verify_many(self, items: Sequence[tuple[PublicKey, bytes, bytes]]) -> list[bool]: ...


def _key(pub: PublicKey, sig: bytes, msg: bytes) -> bytes:
    h = hashlib.sha256(pub.point)
    h.update(len(sig).to_bytes(2, "big"))  # length prefix: (sig, msg) split is unambiguous
    h.update(sig)
    h.update(msg)
    return h.digest()


class SigCache:
    """LRU set of verified (key, signature, message) triples; thread-safe."""

    def __init__(self, limit: int = SIGCACHE_MAX) -> None:
        if limit < 1:
            raise ValueError("limit must be positive")
        self.limit = limit
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, pub: PublicKey, sig: bytes, msg: bytes) -> None:
        """Record a triple known to verify (e.g. a signature this node just made)."""
        self._add(_key(pub, sig, msg))

    def _add(self, k: bytes) -> None:
        with self._lock:
            self._seen[k] = None
            self._seen.move_to_end(k)
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)

    def _hit(self, k: bytes) -> bool:
        with self._lock:
            if k in self._seen:
                self._seen.move_to_end(k)
                self.hits += 1
                return True
            self.misses += 1
            return False

    def verify_many(self, verifier: Verifier, items: Sequence[tuple[PublicKey, bytes, bytes]]) -> list[bool]:
        """Like ``verifier.verify_many``, answering cached triples without verifying them again."""
        keys = [_key(pub, sig, msg) for pub, sig, msg in items]
        results = [self._hit(k) for k in keys]
        todo = [i for i, ok in enumerate(results) if not ok]
        if todo:
            fresh = verifier.verify_many([items[i] for i in todo])
            assert len(fresh) == len(todo), "verifier returned the wrong number of results"
            for i, ok in zip(todo, fresh, strict=True):
                if ok:
                    results[i] = True
                    self._add(keys[i])
        return results
