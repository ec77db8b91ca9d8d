"""Seeded whole-cluster simulations of the Raft core (see raftsim.py for faults and checks).

Each seed is short (a fault phase of 120 ticks, then healing and a liveness check); longer runs
are ``scripts/sim-soak``. A failure message starts with the seed: replay it with
``scripts/sim-soak --seed S --nodes N``.
"""

from __future__ import annotations

import pytest
from raftsim import Sim, SimFailure, run_seed

# 3- and 5-node clusters, 260 seeds each: 520 seeds in the default suite.
SEEDS_PER_SIZE = 260
BATCH = 20


@pytest.mark.parametrize("n_nodes", [3, 5])
@pytest.mark.parametrize("batch", range(SEEDS_PER_SIZE // BATCH))
def test_simulated_cluster_is_safe_and_live(n_nodes: int, batch: int) -> None:
    for seed in range(batch * BATCH, (batch + 1) * BATCH):
        run_seed(seed * 10 + n_nodes, n_nodes=n_nodes)


def test_seed_replays_identically() -> None:
    a, b = Sim(4242, 5), Sim(4242, 5)
    a.run()
    b.run()
    assert list(a.trace) == list(b.trace)
    assert a.chain == b.chain and a.stats == b.stats


def test_simulation_exercises_faults_and_progress() -> None:
    """The seeds above are only worth something if faults and progress really happen."""
    totals = {"crashes": 0, "snapshots": 0, "conf": 0, "restores": 0, "lost_readies": 0, "blocks": 0, "terms": 0}
    for seed in range(40):
        sim = run_seed(seed, n_nodes=3 + 2 * (seed % 2))
        for k in ("crashes", "snapshots", "conf", "restores", "lost_readies"):
            totals[k] += sim.stats[k]
        totals["blocks"] += len(sim.chain)
        totals["terms"] += len(sim.leader_of_term)
    for k in ("crashes", "snapshots", "conf", "blocks"):
        assert totals[k] > 20, (k, totals)
    assert totals["restores"] > 0, totals  # followers installed snapshots sent by a leader
    assert totals["lost_readies"] > 0, totals  # crashes lost state that was not yet synced
    assert totals["terms"] > 40  # elections beyond the first one happened


def test_checker_catches_a_broken_vote_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation check: granting votes to out-of-date candidates must be caught (§5.4.1)."""
    from consensus.raft.log import RaftLog

    monkeypatch.setattr(RaftLog, "is_up_to_date", lambda self, index, term: True)
    caught = 0
    for seed in range(60):
        try:
            run_seed(seed, n_nodes=3 + 2 * (seed % 2))
        except SimFailure as exc:
            assert str(exc).startswith(f"seed={seed} ")
            caught += 1
    assert caught > 0
