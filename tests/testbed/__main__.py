"""``scripts/testbed``: the namespace test bed by hand.

    scripts/testbed up [--orgs N] [--dir D]   start a bed and read fault verbs from stdin
    scripts/testbed cleanup [--all]           remove beds whose owner died (--all: every bed)
    scripts/testbed check --net D --history H re-run the history checker on a kept network
                                              (its nodes stopped) and print the report

Verbs at the ``bed>`` prompt (node names as printed at start-up):

    status                         heights, leader, paused nodes
    partition A,B C                split into groups (comma-separated names; space between groups)
    oneway A B                     drop what A sends to B
    heal                           remove every partition
    netem NODE delay=100 jitter=50 loss=5 duplicate=1 reorder=2     impair NODE's link
    clear NODE                     remove NODE's link impairment
    kill NODE | restart NODE | pause NODE | resume NODE | wipe NODE
    fill NODE | free NODE          fill / free NODE's data tmpfs (nodes named with --disk)
    quit                           tear everything down

The bed is removed on quit, end of input, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
from pathlib import Path

from secprivnode.network import load_network
from testbed.checker import check
from testbed.cluster import Testbed
from testbed.netns import Netem, NetnsError, cleanup_leftovers, netns_unavailable_reason

NETEM_KEYS = {"delay": "delay_ms", "jitter": "jitter_ms", "loss": "loss_pct", "duplicate": "duplicate_pct",
              "reorder": "reorder_pct"}  # fmt: skip


def _status(bed: Testbed) -> str:
    leader = None
    try:
        leader = bed.leader(timeout_s=5).name
    except AssertionError:
        pass
    heights = bed.heights()
    lines = [f"leader: {leader or '(none agreed)'}"]
    for n in bed.nodes:
        state = "paused" if n.name in bed.paused else ("running" if n.running() else "stopped")
        lines.append(f"  {n.name:<18} {bed.addr(n.name):<15} {state:<8} height {heights.get(n.name, '-')}")
    return "\n".join(lines)


def _verb(bed: Testbed, words: list[str]) -> str:
    verb, args = words[0], words[1:]
    if verb == "status":
        return _status(bed)
    if verb == "partition":
        bed.net.partition(*(a.split(",") for a in args))
    elif verb == "oneway":
        bed.net.block(args[0], args[1])
    elif verb == "heal":
        bed.net.heal()
    elif verb == "netem":
        opts = dict(a.split("=", 1) for a in args[1:])
        spec = Netem(**{NETEM_KEYS[k]: (float(v) if k in ("loss", "duplicate", "reorder") else int(v))
                        for k, v in opts.items()})  # fmt: skip
        bed.net.netem(args[0], spec)
    elif verb == "clear":
        bed.net.clear_netem(args[0])
    elif verb in ("kill", "restart", "pause", "resume", "wipe"):
        getattr(bed, verb)(args[0])
    elif verb == "fill":
        return f"{bed.fill_disk(args[0])} bytes of ballast"
    elif verb == "free":
        bed.free_disk(args[0])
    else:
        return f"unknown verb {verb!r} (see --help)"
    return "ok"


def _up(args: argparse.Namespace) -> int:
    reason = netns_unavailable_reason()
    if reason:
        print(f"testbed: {reason}", file=sys.stderr)
        return 2
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="secprivnode-bed-"))
    with Testbed(work, orgs=args.orgs, disk_nodes=tuple(args.disk)) as bed:
        print(f"network directory {bed.dir}")
        print(_status(bed))
        for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: input("bed> "), "quit"):
            words = shlex.split(line)
            if not words:
                continue
            if words[0] == "quit":
                break
            try:
                print(_verb(bed, words), flush=True)
            except (NetnsError, KeyError, IndexError, ValueError, AssertionError) as exc:
                print(f"error: {exc}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/testbed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a bed and read fault verbs from stdin")
    up.add_argument("--orgs", type=int, default=3)
    up.add_argument("--dir", default=None, help="parent directory of the network (default: a temp dir)")
    up.add_argument("--disk", action="append", default=[], help="a node whose data dir is a fillable tmpfs")
    chk = sub.add_parser("check", help="re-run the history checker on a kept network directory")
    chk.add_argument("--net", required=True, type=Path, help="the network directory (holds network.yaml)")
    chk.add_argument("--history", required=True, type=Path, help="the workload's history (JSON lines)")
    clean = sub.add_parser("cleanup", help="remove beds whose owning process is gone")
    clean.add_argument("--all", action="store_true", help="remove every bed, running or not")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.cmd == "check":
        channel, nodes = load_network(args.net)
        report = check(args.history, {n.name: n.dir / "data" for n in nodes}, channel)
        print(report.text())
        return 0 if report.ok else 1
    if args.cmd == "cleanup":
        removed = cleanup_leftovers(everything=args.all)
        print("removed: " + (", ".join(removed) if removed else "nothing"))
        return 0
    try:
        return _up(args)
    except (EOFError, KeyboardInterrupt):
        return 130


if __name__ == "__main__":
    sys.exit(main())
