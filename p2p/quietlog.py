"""Say a repeated refusal once, then keep quiet about it for a while.

A peer that keeps dialling with a certificate we refuse (revoked, removed, from a foreign CA)
comes back every few seconds with the same complaint. The first refusal is worth a warning; the
next hundred are not. :class:`RepeatGate` answers, for each message key, whether this occurrence
should be logged loudly: the first one, and then one per ``quiet_s`` window, which reports how many
were held back meanwhile. Everything else the caller logs at DEBUG.

The gate is bounded (:data:`GATE_KEYS_MAX` keys, oldest forgotten first) so a flood of distinct
messages cannot grow it. It reads no clock itself: the caller passes ``now`` (seconds).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["GATE_KEYS_MAX", "REPEAT_QUIET_S", "RepeatGate"]

# Distinct refusals remembered at once: a network has tens of nodes, and a key costs a few
# hundred bytes; beyond this the oldest is forgotten (and would be logged loudly once more).
GATE_KEYS_MAX = 256
# Seconds between two loud reports of the same refusal: short enough that an operator tailing a
# log still sees a persistent problem, long enough that a redial every few seconds is not noise.
REPEAT_QUIET_S = 600.0


class RepeatGate:
    def __init__(self, quiet_s: float = REPEAT_QUIET_S, max_keys: int = GATE_KEYS_MAX) -> None:
        self._quiet_s = quiet_s
        self._max_keys = max_keys
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (loud at, held back)

    def loud(self, key: str, now: float) -> int | None:
        """``None``: log this one quietly. Otherwise log it loudly, noting the returned count of
        occurrences held back since the last loud one (0 the first time)."""
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self._quiet_s:
            self._seen[key] = (entry[0], entry[1] + 1)
            return None
        held = entry[1] if entry is not None else 0
        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        while len(self._seen) > self._max_keys:
            self._seen.popitem(last=False)
        return held
