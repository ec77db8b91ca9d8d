"""Long simulation runs of the Raft cluster, the replay of one seed, or the mutation score (used by
scripts/sim-soak).

A failure is reported seed and violated property first, then the faults, then the end of the
trace, and the command that replays it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from raftsim import Sim, SimFailure

# Trace lines printed under a failure: the last elections and crashes, not the whole history.
REPORT_TRACE_LINES = 60


def report(exc: SimFailure, replay: str) -> str:
    head, faults, *trace = str(exc).splitlines()
    return "\n".join([f"FAIL {head}", f"  {faults}", *trace[-REPORT_TRACE_LINES:], f"  replay: {replay}"])


def _run(job: tuple[int, int, int, str | None]) -> tuple[int, int, str | None]:
    """One seed: (seed, blocks applied, failure report or None)."""
    seed, n, fault_ticks, aim = job
    sim = Sim(seed, n_nodes=n, fault_ticks=fault_ticks, aim=aim)
    try:
        sim.run()
    except SimFailure as exc:
        aim_arg = f" --aim {aim}" if aim is not None else ""
        return seed, 0, report(exc, f"scripts/sim-soak --seed {seed} --nodes {n} --fault-ticks {fault_ticks}{aim_arg}")
    return seed, len(sim.chain), None


def mutation_score(bound: int) -> int:
    from mutants import MUTANTS
    from test_mutants import first_catch

    survived = 0
    print(f"{'mutant':<26} {'first seed':>10}  property")
    for m in MUTANTS:
        caught = first_catch(m, bound)
        if caught is None:
            survived += 1
            print(f"{m.name:<26} {'-':>10}  survived {bound} seeds: {m.what}")
        else:
            seed, head = caught
            print(f"{m.name:<26} {seed:>10}  {head.split(' ', 2)[2][:90]}")
    print(f"mutation score: {len(MUTANTS) - survived}/{len(MUTANTS)} caught within {bound} seeds")
    return 1 if survived else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Seeded Raft cluster simulation (safety + liveness checks).")
    ap.add_argument("--seeds", type=int, default=1000, help="number of seeds to run (from --start)")
    ap.add_argument("--start", type=int, default=100_000, help="first seed of a --seeds run")
    ap.add_argument("--seed", type=int, help="replay exactly this seed and print its trace tail")
    ap.add_argument("--nodes", type=int, choices=(3, 5), help="cluster size (default: alternate 3 and 5)")
    ap.add_argument("--fault-ticks", type=int, default=600, help="ticks of faults before healing")
    ap.add_argument("--aim", choices=("", "churn", "votes"), help="force one fault schedule (default: per seed)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes for a --seeds run")
    ap.add_argument("--mutants", type=int, metavar="BOUND", help="print the mutation score within BOUND seeds")
    args = ap.parse_args(argv)

    if args.mutants is not None:
        return mutation_score(args.mutants)

    if args.seed is not None:
        sim = Sim(args.seed, n_nodes=args.nodes or 3, fault_ticks=args.fault_ticks, aim=args.aim)
        try:
            sim.run()
        except SimFailure as exc:
            print(report(exc, "(this run)"))
            return 1
        print(f"seed={args.seed} ok: {sim.now} ticks, {len(sim.chain)} blocks, stats={sim.stats}")
        for t, kind, obj in list(sim.trace)[-40:]:
            print(f"  t={t} {kind} {obj}")
        return 0

    t0 = time.monotonic()
    jobs = [
        (args.start + k, args.nodes or (3 if k % 2 == 0 else 5), args.fault_ticks, args.aim) for k in range(args.seeds)
    ]
    failures = blocks = 0
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        for _seed, n_blocks, failure in pool.imap_unordered(_run, jobs, chunksize=16):
            blocks += n_blocks
            if failure is not None:
                failures += 1
                print(failure, flush=True)
    dt = time.monotonic() - t0
    print(f"{args.seeds} seeds, {failures} failures, {blocks} blocks applied, {dt:.1f}s ({args.jobs} jobs)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
