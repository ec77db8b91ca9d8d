"""The signature cache: hits skip verification, failures are never cached, the limit holds."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from crypto.signing import PublicKey, get_backend
from secprivnode.pipeline.sigcache import SigCache


class CountingVerifier:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def verify_many(self, items: Sequence[tuple[PublicKey, bytes, bytes]]) -> list[bool]:
        self.seen.append(len(items))
        return [get_backend().verify(k, s, m) for k, s, m in items]


def test_cache_hits_failures_and_limit() -> None:
    backend = get_backend()
    key = backend.generate()
    msgs = [bytes([i]) * 32 for i in range(4)]
    good = [(key.public, backend.sign(key, m), m) for m in msgs]
    bad = (key.public, good[0][1], msgs[1])  # a signature over another message
    v = CountingVerifier()
    cache = SigCache(limit=3)
    assert cache.verify_many(v, [good[0], bad]) == [True, False]
    assert cache.verify_many(v, [good[0], bad]) == [True, False]
    assert v.seen == [2, 1]  # the good one came from the cache; the failure was verified again
    assert cache.hits == 1 and len(cache) == 1
    assert cache.verify_many(v, good) == [True] * 4
    assert len(cache) == 3  # bounded: the least recently used entry went
    assert cache.verify_many(v, [good[0]]) == [True]
    assert v.seen[-1] == 1  # good[0] was evicted, so it was verified again
    cache.add(*good[1])
    assert cache.verify_many(v, [good[1]]) == [True] and v.seen[-1] == 1
    with pytest.raises(ValueError):
        SigCache(limit=0)
