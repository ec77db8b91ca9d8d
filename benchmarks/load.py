"""End-to-end load benchmark of a secprivnode network: ``secprivnode bench`` as a script.

    python benchmarks/load.py [--quick] [any `secprivnode bench` option...]

Without options it starts a 3-node network (every node orders, endorses and commits; the
``assets`` policy needs one org), sends 200-byte blind writes for 60 s from 3 worker processes
under a fixed load of outstanding transactions, and prints the Caliper-style table, node CPU/RSS,
the crypto ceiling and the RPC read comparison. ``--quick`` runs a few seconds (CI). Every other
argument is passed to ``secprivnode bench`` unchanged (see ``secprivnode bench --help``).

It prints what it measured, the machine and the command; it asserts nothing.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from importlib.metadata import PackageNotFoundError, version

FULL = ["--nodes", "3", "--duration", "60"]
QUICK = ["--nodes", "3", "--duration", "4", "--drain", "20", "--rpc-seconds", "1", "--ceiling-seconds", "0.3"]


def bench_args(argv: list[str]) -> list[str]:
    """The ``secprivnode bench`` arguments for this script's command line."""
    quick = "--quick" in argv
    rest = [a for a in argv if a != "--quick"]
    defaults = QUICK if quick else FULL
    # Options given on the command line win over the defaults they name.
    given = {a.split("=", 1)[0] for a in rest if a.startswith("--")}
    if given & {"--dir", "--url"}:
        defaults = [a for a in defaults if a not in ("--nodes", "3")]
    out: list[str] = []
    i = 0
    while i < len(defaults):
        opt, val = defaults[i], defaults[i + 1]
        if opt not in given:
            out += [opt, val]
        i += 2
    return out + rest


def main(argv: list[str]) -> None:
    from secprivnode.cli.main import cli

    args = bench_args(argv)
    pkgs = []
    for p in ("secprivnode", "aiohttp", "cryptography", "msgpack", "plyvel", "uvloop"):
        try:
            pkgs.append(f"{p} {version(p)}")
        except PackageNotFoundError:
            pkgs.append(f"{p} -")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"  = secprivnode bench {shlex.join(args)}")
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, {', '.join(pkgs)}"
    )
    cli.main(["bench", *args], prog_name="secprivnode", standalone_mode=True)


if __name__ == "__main__":
    main(sys.argv[1:])
