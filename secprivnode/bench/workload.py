"""Benchmark workloads: the contract calls a load worker sends, generated from a seeded RNG.

All of them use the sample ``assets`` contract (:mod:`secprivnode.contracts.assets`):

* ``write`` — blind writes, ``put(key, value)`` with a fresh key per transaction and a random
  value of ``value_bytes`` (200 by default). No reads, so MVCC never refuses them.
* ``rmw`` — read-modify-write, ``update(asset, value)`` over ``keys`` assets created before the
  round. Two updates of the same asset in one block (or one endorsed before the other
  committed) conflict, so ``keys`` sets the contention: fewer keys, more MVCC conflicts. The
  contract lets only the owner organisation update an asset, so the assets are created owned by
  the organisation of the run's first client identity, and rounds with rmw operations send
  through that organisation's identities only (``secprivnode.bench.runner``).
* ``query`` — ``read(asset)`` evaluated by ``tx_query``; nothing is ordered.
* ``mix`` — each operation drawn from the three by weight (50/25/25 by default).

Keys carry a per-run prefix so repeated runs against one network never collide. Every worker
has its own ``random.Random(seed, worker)`` stream, so a run is reproducible for a given seed.
This module never talks to a node and never reads the clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_MIX",
    "MAX_VALUE_BYTES",
    "WORKLOADS",
    "Op",
    "Workload",
    "WorkloadSpec",
    "asset_id",
    "setup_ops",
]

WORKLOADS = ("write", "rmw", "query", "mix")
DEFAULT_MIX = (("write", 50), ("rmw", 25), ("query", 25))
# Largest value a benchmark writes: well under the node's 4 MiB request body even in a batch of
# 100 proposals, and far beyond what ledger records (hashes and metadata) hold.
MAX_VALUE_BYTES = 32 * 1024
# Assets created before an rmw/query round. A million is already a long setup phase.
MAX_KEYS = 1_000_000
CONTRACT = "assets"


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    name: str = "write"
    value_bytes: int = 200
    keys: int = 1000  # assets in the rmw/query key space
    mix: tuple[tuple[str, int], ...] = DEFAULT_MIX
    prefix: str = "bench"  # per-run key prefix

    def __post_init__(self) -> None:
        if self.name not in WORKLOADS:
            raise ValueError(f"unknown workload {self.name!r} (choose from {', '.join(WORKLOADS)})")
        if not 0 <= self.value_bytes <= MAX_VALUE_BYTES:
            raise ValueError(f"value_bytes must be in [0, {MAX_VALUE_BYTES}]")
        if not 1 <= self.keys <= MAX_KEYS:
            raise ValueError(f"keys must be in [1, {MAX_KEYS}]")
        if (
            not self.mix
            or any(w < 0 or k not in WORKLOADS[:3] for k, w in self.mix)
            or sum(w for _, w in self.mix) <= 0
        ):
            raise ValueError("mix: weights of write/rmw/query, non-negative, not all zero")
        if not self.prefix or "/" in self.prefix:
            raise ValueError("prefix must be a non-empty string without '/'")

    @property
    def needs_assets(self) -> bool:
        """Whether the round reads assets that must exist first."""
        return self._uses("rmw", "query")

    @property
    def updates_assets(self) -> bool:
        """Whether the round updates assets (and so must send as identities of their owner)."""
        return self._uses("rmw")

    def _uses(self, *kinds: str) -> bool:
        if self.name == "mix":
            return any(k in kinds and w > 0 for k, w in self.mix)
        return self.name in kinds


@dataclass(frozen=True, slots=True)
class Op:
    kind: str  # write | rmw | query | setup
    contract: str
    fn: str
    args: tuple[Any, ...]

    @property
    def ordered(self) -> bool:
        """Whether this operation becomes a transaction (``tx_submit``) rather than a query."""
        return self.kind != "query"


def asset_id(prefix: str, i: int) -> str:
    return f"{prefix}-a{i}"


def setup_ops(spec: WorkloadSpec, owner: str) -> Iterator[Op]:
    """The transactions that create the rmw/query key space (one asset per key, owned by ``owner``)."""
    for i in range(spec.keys):
        yield Op("setup", CONTRACT, "create", (asset_id(spec.prefix, i), owner, b""))


class Workload:
    """The operation stream of one worker."""

    def __init__(self, spec: WorkloadSpec, worker: int, seed: int) -> None:
        self.spec = spec
        self.worker = worker
        # One stream per (seed, worker): workers never draw the same keys or values in lockstep.
        self._rng = random.Random(f"{seed}/{worker}")
        self._seq = 0
        kinds = [k for k, w in spec.mix if w > 0]
        self._kinds = kinds
        self._weights = [w for _, w in spec.mix if w > 0]

    def _value(self) -> bytes:
        return self._rng.randbytes(self.spec.value_bytes)

    def _asset(self) -> str:
        return asset_id(self.spec.prefix, self._rng.randrange(self.spec.keys))

    def _op(self, kind: str) -> Op:
        if kind == "write":
            key = f"{self.spec.prefix}-w{self.worker}-{self._seq}"
            return Op("write", CONTRACT, "put", (key, self._value()))
        if kind == "rmw":
            return Op("rmw", CONTRACT, "update", (self._asset(), self._value()))
        if kind == "query":
            return Op("query", CONTRACT, "read", (self._asset(),))
        raise AssertionError(f"unknown operation kind {kind!r}")

    def next_op(self) -> Op:
        name = self.spec.name
        if name == "mix":
            name = self._rng.choices(self._kinds, self._weights)[0]
        op = self._op(name)
        self._seq += 1
        return op
