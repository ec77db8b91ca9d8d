"""The mutation score of the simulator: every planted bug of the Raft core (tests/sim/mutants.py)
is caught within a bounded number of seeds, by the same seeds and checks the suite runs.

``scripts/sim-soak --mutants`` prints the table (seeds needed per mutant, the property that
caught it)."""

from __future__ import annotations

import pytest
from mutants import MUTANTS, Mutant
from raftsim import SimFailure, run_seed

# Seeds tried per mutant, alternating 3- and 5-node clusters. The aimed schedules (Faults.aim)
# catch each of today's mutants within the first 120 seeds; the bound leaves room for changes
# to the simulator that shift which seed finds what, without letting a mutant go unnoticed.
MUTANT_SEED_BOUND = 400


def first_catch(m: Mutant, bound: int = MUTANT_SEED_BOUND) -> tuple[int, str] | None:
    """The first seed whose run fails with ``m`` planted, and the property it broke."""
    with m.applied():
        for seed in range(bound):
            try:
                run_seed(seed, n_nodes=3 + 2 * (seed % 2))
            except SimFailure as exc:
                head = str(exc).splitlines()[0]
                assert head.startswith(f"seed={seed} "), head  # the seed and the property come first
                return seed, head
    return None


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_planted_bug_is_caught(mutant: Mutant) -> None:
    caught = first_catch(mutant)
    assert caught is not None, f"{mutant.name} ({mutant.what}) survived {MUTANT_SEED_BOUND} seeds"


def test_mutants_leave_the_core_as_it_was() -> None:
    from consensus.raft.log import RaftLog
    from consensus.raft.raft import Raft

    before = {(o, n): o.__dict__[n] for o in (Raft, RaftLog) for n in list(o.__dict__)}
    for m in MUTANTS:
        with m.applied():
            assert m.owner.__dict__[m.method] is not before[(m.owner, m.method)]
    assert {(o, n): o.__dict__[n] for o in (Raft, RaftLog) for n in list(o.__dict__)} == before
