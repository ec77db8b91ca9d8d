"""Rate control for the load generator: how many more transactions a worker may send right now.

Three controllers, all pure functions of (seconds since the round started, transactions sent,
transactions outstanding), so they can be tested without a clock:

* :class:`FixedRate` — a constant offered load in tx/s (Caliper's ``fixed-rate``), with a cap
  on outstanding transactions so an overloaded network is not buried under an unbounded backlog;
* :class:`FixedOutstanding` — keep exactly ``n`` transactions in flight (closed loop, Caliper's
  ``fixed-load``): the network's own speed sets the rate;
* :class:`LinearRamp` — the offered rate grows linearly from ``start_tps`` to ``end_tps`` over
  ``ramp_s`` seconds and then stays at ``end_tps``.

:func:`split` divides a whole run's controller among worker processes. This module never reads
the clock and never sleeps: the runner asks it and does the waiting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "DEFAULT_MAX_OUTSTANDING",
    "FixedOutstanding",
    "FixedRate",
    "LinearRamp",
    "RateControl",
    "parse_ramp",
    "split",
]

# Outstanding transactions allowed under an open-loop (rate) controller. Two seconds of the
# throughput target on this class of machine: enough that latency, not this cap, limits a healthy
# network, and small enough that a stalled one is not sent an ever-growing backlog.
DEFAULT_MAX_OUTSTANDING = 8000


class RateControl(Protocol):
    def allowed(self, elapsed_s: float, sent: int, outstanding: int) -> int:
        """How many more transactions may be sent now (never negative)."""
        ...

    def describe(self) -> str: ...


def _cap(n: int, outstanding: int, max_outstanding: int) -> int:
    return max(0, min(n, max_outstanding - outstanding))


@dataclass(frozen=True, slots=True)
class FixedRate:
    tps: float
    max_outstanding: int = DEFAULT_MAX_OUTSTANDING

    def __post_init__(self) -> None:
        if not (self.tps > 0 and math.isfinite(self.tps)):
            raise ValueError("tps must be a positive number")
        if self.max_outstanding < 1:
            raise ValueError("max_outstanding must be positive")

    def target(self, elapsed_s: float) -> int:
        """Transactions that should have been sent after ``elapsed_s`` (the first one at t=0)."""
        if elapsed_s < 0:
            return 0
        return math.floor(self.tps * elapsed_s) + 1

    def allowed(self, elapsed_s: float, sent: int, outstanding: int) -> int:
        return _cap(self.target(elapsed_s) - sent, outstanding, self.max_outstanding)

    def describe(self) -> str:
        return f"fixed rate {self.tps:g} tx/s"


@dataclass(frozen=True, slots=True)
class FixedOutstanding:
    outstanding: int

    def __post_init__(self) -> None:
        if self.outstanding < 1:
            raise ValueError("outstanding must be positive")

    def allowed(self, elapsed_s: float, sent: int, outstanding: int) -> int:
        if elapsed_s < 0:
            return 0
        return max(0, self.outstanding - outstanding)

    def describe(self) -> str:
        return f"fixed load {self.outstanding} outstanding"


@dataclass(frozen=True, slots=True)
class LinearRamp:
    start_tps: float
    end_tps: float
    ramp_s: float
    max_outstanding: int = DEFAULT_MAX_OUTSTANDING

    def __post_init__(self) -> None:
        if self.start_tps < 0 or self.end_tps <= 0 or self.ramp_s <= 0:
            raise ValueError("a ramp needs start >= 0, end > 0 and a positive duration")
        if self.max_outstanding < 1:
            raise ValueError("max_outstanding must be positive")

    def rate_at(self, elapsed_s: float) -> float:
        if elapsed_s <= 0:
            return self.start_tps
        if elapsed_s >= self.ramp_s:
            return self.end_tps
        return self.start_tps + (self.end_tps - self.start_tps) * elapsed_s / self.ramp_s

    def target(self, elapsed_s: float) -> int:
        """The integral of the rate from 0 to ``elapsed_s``, plus the first transaction at t=0."""
        if elapsed_s < 0:
            return 0
        t = min(elapsed_s, self.ramp_s)
        area = self.start_tps * t + (self.end_tps - self.start_tps) * t * t / (2 * self.ramp_s)
        if elapsed_s > self.ramp_s:
            area += self.end_tps * (elapsed_s - self.ramp_s)
        return math.floor(area + 1e-9) + 1

    def allowed(self, elapsed_s: float, sent: int, outstanding: int) -> int:
        return _cap(self.target(elapsed_s) - sent, outstanding, self.max_outstanding)

    def describe(self) -> str:
        return f"linear ramp {self.start_tps:g} -> {self.end_tps:g} tx/s over {self.ramp_s:g} s"


def _int_share(total: int, workers: int, i: int) -> int:
    """Worker ``i``'s part of ``total`` so the parts sum exactly to ``total`` (at least 1 each)."""
    base, extra = divmod(total, workers)
    return max(1, base + (1 if i < extra else 0))


def split(control: RateControl, workers: int) -> list[RateControl]:
    """One controller per worker whose combined offered load equals ``control``'s."""
    if workers < 1:
        raise ValueError("workers must be positive")
    out: list[RateControl] = []
    for i in range(workers):
        if isinstance(control, FixedRate):
            out.append(FixedRate(control.tps / workers, _int_share(control.max_outstanding, workers, i)))
        elif isinstance(control, FixedOutstanding):
            out.append(FixedOutstanding(_int_share(control.outstanding, workers, i)))
        elif isinstance(control, LinearRamp):
            out.append(
                LinearRamp(
                    control.start_tps / workers,
                    control.end_tps / workers,
                    control.ramp_s,
                    _int_share(control.max_outstanding, workers, i),
                )
            )
        else:
            raise TypeError(f"cannot split {type(control).__name__}")
    return out


def parse_ramp(text: str, duration_s: float) -> LinearRamp:
    """``"START:END"`` (tx/s) ramped over ``duration_s``, or ``"START:END:SECONDS"``."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"ramp: expected START:END or START:END:SECONDS, got {text!r}")
    try:
        nums = [float(p) for p in parts]
    except ValueError as exc:
        raise ValueError(f"ramp: not numbers: {text!r}") from exc
    ramp_s = nums[2] if len(nums) == 3 else duration_s
    return LinearRamp(nums[0], nums[1], ramp_s)
