"""Long simulation runs of the Raft cluster, or the replay of one seed (used by scripts/sim-soak)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from raftsim import Sim, SimFailure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Seeded Raft cluster simulation (safety + liveness checks).")
    ap.add_argument("--seeds", type=int, default=1000, help="number of seeds to run (from --start)")
    ap.add_argument("--start", type=int, default=100_000, help="first seed of a --seeds run")
    ap.add_argument("--seed", type=int, help="replay exactly this seed and print its trace tail")
    ap.add_argument("--nodes", type=int, choices=(3, 5), help="cluster size (default: alternate 3 and 5)")
    ap.add_argument("--fault-ticks", type=int, default=600, help="ticks of faults before healing")
    args = ap.parse_args(argv)

    if args.seed is not None:
        sim = Sim(args.seed, n_nodes=args.nodes or 3, fault_ticks=args.fault_ticks)
        try:
            sim.run()
        except SimFailure as exc:
            print(exc)
            return 1
        print(f"seed={args.seed} ok: {sim.now} ticks, {len(sim.chain)} blocks, stats={sim.stats}")
        for t, kind, obj in list(sim.trace)[-40:]:
            print(f"  t={t} {kind} {obj}")
        return 0

    t0 = time.monotonic()
    failures = 0
    blocks = 0
    for k in range(args.seeds):
        seed = args.start + k
        n = args.nodes or (3 if k % 2 == 0 else 5)
        sim = Sim(seed, n_nodes=n, fault_ticks=args.fault_ticks)
        try:
            sim.run()
            blocks += len(sim.chain)
        except SimFailure as exc:
            failures += 1
            print(str(exc)[-8000:])
            print(f"replay: scripts/sim-soak --seed {seed} --nodes {n} --fault-ticks {args.fault_ticks}")
    dt = time.monotonic() - t0
    print(f"{args.seeds} seeds, {failures} failures, {blocks} blocks applied, {dt:.1f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
