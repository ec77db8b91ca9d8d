"""RepeatGate: a repeated refusal is reported once per quiet window, with the count held back."""

from __future__ import annotations

from p2p.quietlog import RepeatGate


def test_first_is_loud_repeats_are_quiet_until_the_window_ends() -> None:
    gate = RepeatGate(quiet_s=10.0)
    assert gate.loud("revoked", 0.0) == 0
    assert [gate.loud("revoked", t) for t in (2.0, 4.0, 9.9)] == [None, None, None]
    assert gate.loud("revoked", 10.0) == 3  # loud again, reporting the three held back
    assert gate.loud("revoked", 11.0) is None


def test_keys_are_independent_and_bounded() -> None:
    gate = RepeatGate(quiet_s=10.0, max_keys=2)
    assert gate.loud("a", 0.0) == 0
    assert gate.loud("b", 0.0) == 0
    assert gate.loud("a", 1.0) is None
    assert gate.loud("c", 1.0) == 0  # a third key evicts the oldest, "a"
    assert gate.loud("a", 2.0) == 0  # forgotten, so loud once more
