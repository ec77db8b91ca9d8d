"""The crypto ceiling: the committed tx/s the machine's ECDSA speed alone would allow.

Every transaction costs the network a fixed number of ECDSA P-256 operations. Counted from the
code path of a network of ``N`` nodes that all endorse, order and commit, a policy satisfied by
``E`` endorsements, and a load generator on the same machine:

======================  ==========  ==============================================================
step                    operations  where
======================  ==========  ==============================================================
client                  1 sign      ``client.build_proposal`` signs ``Proposal.hash()``
endorsement             E verify    ``Endorser._creator``: the creator's signature, once per
                        E sign      endorser; then it signs ``endorsement_digest`` and puts its own
                                    signature in the node's SigCache
ordering                1 verify    ``CreatorChecker`` on the Raft leader, through the leader's
                                    SigCache (``ChannelRuntime._creator_verifier``)
validation              N(1+E)      ``BlockValidator`` on every committer checks the creator and each
                        − 2E − 1    endorsement; SigCache hits: on each of the E endorsing nodes the
                        verify      creator's and its own endorsement's signatures, and on the leader
                                    the creator's (verified at ordering, or — if the leader endorsed —
                                    at endorsement, when the ordering check was the hit instead)
block                   (1 sign +   the leader signs each header; every committer verifies it
                        N verify)/B (B = transactions per block, measured in the run)
======================  ==========  ==============================================================

Signs are converted to verify-equivalents by the measured ratio ``verify_rate / sign_rate``::

    verifies/tx = E + 1 + N(1+E) − 2E − 1 + N/B
    signs/tx    = 1 + E + 1/B
    ceiling     = verify_rate × cores ÷ (verifies/tx + signs/tx × verify_rate/sign_rate)

With N=3, E=1, B=500 that is 5.006 verifies and 2.002 signs per transaction. The rates are
measured for about a second each on one core with :mod:`crypto.signing`'s native backend. This
module never talks to a node.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from crypto.signing import get_backend

__all__ = ["CryptoRates", "SigCount", "ceiling_tps", "count_signatures", "measure_rates"]

# Operations per timing check while measuring: large enough that reading the clock costs nothing.
_CHUNK = 64


@dataclass(frozen=True, slots=True)
class SigCount:
    nodes: int
    endorsers: int
    block_txs: float
    client: float
    endorse_verify: float
    endorse_sign: float
    order_verify: float
    validate_verify: float
    block_sign: float
    block_verify: float

    @property
    def verifies(self) -> float:
        return self.endorse_verify + self.order_verify + self.validate_verify + self.block_verify

    @property
    def signs(self) -> float:
        return self.client + self.endorse_sign + self.block_sign

    def formula(self) -> str:
        n, e, b = self.nodes, self.endorsers, self.block_txs
        return (
            f"verifies/tx = E + 1 + N(1+E) - 2E - 1 + N/B = {e} + 1 + {n}*{1 + e} - {2 * e} - 1 + {n}/{b:.0f}"
            f" = {self.verifies:.3f}; signs/tx = 1 + E + 1/B = {self.signs:.3f}"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verifies": self.verifies, "signs": self.signs, "formula": self.formula()}


def count_signatures(nodes: int, endorsers: int, block_txs: float) -> SigCount:
    """ECDSA operations per transaction (see the module docstring for where each one happens)."""
    if nodes < 1 or not 1 <= endorsers <= nodes:
        raise ValueError("need 1 <= endorsers <= nodes")
    b = max(1.0, block_txs)
    return SigCount(
        nodes=nodes,
        endorsers=endorsers,
        block_txs=b,
        client=1.0,
        endorse_verify=float(endorsers),
        endorse_sign=float(endorsers),
        order_verify=1.0,
        validate_verify=float(nodes * (1 + endorsers) - 2 * endorsers - 1),
        block_sign=1.0 / b,
        block_verify=nodes / b,
    )


@dataclass(frozen=True, slots=True)
class CryptoRates:
    verify_per_s: float
    sign_per_s: float
    cores: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _rate(op: Callable[[], object], seconds: float, clock: Callable[[], float]) -> float:
    start = clock()
    n = 0
    while True:
        for _ in range(_CHUNK):
            op()
        n += _CHUNK
        elapsed = clock() - start
        if elapsed >= seconds:
            return n / elapsed


def measure_rates(seconds: float = 1.0, *, clock: Callable[[], float] = time.perf_counter) -> CryptoRates:
    """Native ECDSA P-256 verifies/s and signs/s on one core (``seconds`` each)."""
    backend = get_backend("native")
    key = backend.generate()
    msg = os.urandom(32)
    sig = backend.sign(key, msg)
    pub = key.public
    assert backend.verify(pub, sig, msg), "the native backend does not verify its own signature"
    verify = _rate(lambda: backend.verify(pub, sig, msg), seconds, clock)
    sign = _rate(lambda: backend.sign(key, msg), seconds, clock)
    return CryptoRates(verify, sign, os.cpu_count() or 1)


def ceiling_tps(rates: CryptoRates, count: SigCount) -> float:
    """Transactions per second if the machine did nothing but these ECDSA operations."""
    per_tx = count.verifies + count.signs * rates.verify_per_s / rates.sign_per_s
    return rates.verify_per_s * rates.cores / per_tx
