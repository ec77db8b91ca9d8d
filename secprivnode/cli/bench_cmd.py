"""``secprivnode bench``: load-test a running network, or one started for the run.

Prints a Caliper-style table per round, node CPU/RSS, the crypto ceiling with its formula, and
the RPC read comparison; ``--json``/``--html`` save them. User mistakes end in a one-line error.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from secprivnode.bench.rate import FixedOutstanding, FixedRate, RateControl, parse_ramp
from secprivnode.bench.workload import WORKLOADS, WorkloadSpec

__all__ = ["register"]

# Progress lines per round when the output is not a terminal: enough to watch a long run's log.
PROGRESS_LOG_EVERY_S = 10.0

# Closed-loop load when no rate is given: about one 500-transaction block in flight through each
# of endorsement, ordering and commit. More only queues (latency grows, throughput does not).
DEFAULT_OUTSTANDING = 1000


def _control(tps: float | None, outstanding: int | None, ramp: str | None, duration: float | None) -> RateControl:
    given = [x is not None for x in (tps, outstanding, ramp)]
    if sum(given) > 1:
        raise click.UsageError("choose one of --tps, --outstanding and --ramp")
    if tps is not None:
        return FixedRate(tps)
    if ramp is not None:
        try:
            return parse_ramp(ramp, duration or 30.0)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ramp") from exc
    return FixedOutstanding(outstanding or DEFAULT_OUTSTANDING)


@contextlib.contextmanager
def _target(
    directory: Path | None,
    urls: tuple[str, ...],
    cert: Path | None,
    key: Path | None,
    channel: str | None,
    nodes: int | None,
    workers: int,
    log: Any,
) -> Iterator[Any]:
    from secprivnode.bench.runner import Target, local_network, target_from_dir

    if nodes is not None:
        if directory is not None or urls:
            raise click.UsageError("--nodes starts its own network: do not combine it with --dir or --url")
        with local_network(nodes, log) as d:
            yield target_from_dir(d, workers)
        return
    if urls:
        if directory is not None:
            # The directory supplies identities, pid files and the node count; load goes to --url.
            t = target_from_dir(directory, workers)
            yield Target(urls, t.identities, channel or t.channel, t.pids, t.nodes)
            return
        if cert is None or key is None:
            raise click.UsageError("--url needs --cert and --key (or --dir for the network's client identities)")
        yield Target(urls, ((cert.read_bytes(), key.read_bytes()),), channel or "city", (), len(urls))
        return
    if directory is None:
        raise click.UsageError("give --dir (a running local network), --url, or --nodes N")
    t = target_from_dir(directory, workers)
    if channel:
        t = Target(t.urls, t.identities, channel, t.pids, t.nodes)
    yield t


def register(cli: click.Group) -> None:
    @cli.command("bench")
    @click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        default=None,
        help="A running local network's directory.",
    )
    @click.option("--url", "urls", multiple=True, help="JSON-RPC URL of a node (repeat for several).")
    @click.option(
        "--cert",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="Client certificate (PEM) for --url targets; with --key.",
    )
    @click.option(
        "--key",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="Private key (PEM) of --cert.",
    )
    @click.option("--channel", default=None, help="Channel (default: the network's).")
    @click.option(
        "--nodes",
        type=click.IntRange(1, 16),
        default=None,
        help="Start a network of N single-node orgs in a temporary directory for the run.",
    )
    @click.option(
        "--workload",
        "workloads",
        type=click.Choice(WORKLOADS),
        multiple=True,
        help="Round workload (repeat for several rounds). Default: write.",
    )
    @click.option(
        "--keys",
        type=click.IntRange(1, 1_000_000),
        default=1000,
        show_default=True,
        help="rmw/query key space: fewer keys, more MVCC conflicts.",
    )
    @click.option(
        "--value-bytes",
        type=click.IntRange(0, 32 * 1024),
        default=200,
        show_default=True,
        help="Size of each written value (write and rmw operations).",
    )
    @click.option("--tps", type=click.FloatRange(min=0, min_open=True), default=None, help="Fixed offered rate.")
    @click.option(
        "--outstanding",
        type=click.IntRange(1, 100_000),
        default=None,
        help=f"Fixed outstanding transactions (default {DEFAULT_OUTSTANDING} when no rate is given).",
    )
    @click.option("--ramp", default=None, help="Linear ramp START:END[:SECONDS] in tx/s.")
    @click.option(
        "--duration",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Seconds of load per round (default 30 unless --txs).",
    )
    @click.option("--txs", type=click.IntRange(1), default=None, help="Transactions per round instead of a duration.")
    @click.option("--workers", type=click.IntRange(1, 64), default=3, show_default=True, help="Client processes.")
    @click.option(
        "--batch",
        type=click.IntRange(1, 100),
        default=50,
        show_default=True,
        help="Transactions per JSON-RPC batch request.",
    )
    @click.option(
        "--max-requests",
        type=click.IntRange(1, 64),
        default=16,
        show_default=True,
        help="HTTP requests in flight per worker.",
    )
    @click.option(
        "--drain",
        type=click.FloatRange(min=0),
        default=30.0,
        show_default=True,
        help="Seconds to wait for outstanding commits after sending stops.",
    )
    @click.option("--seed", type=int, default=1, show_default=True, help="Seed of the workers' key and value choices.")
    @click.option(
        "--endorsers",
        type=click.IntRange(1, 64),
        default=None,
        help="Endorsements per transaction for the crypto ceiling (default: counted on a committed tx).",
    )
    @click.option(
        "--ceiling-seconds",
        type=click.FloatRange(min=0.1),
        default=1.0,
        show_default=True,
        help="Seconds spent timing each of ECDSA verify and sign on one core, for the crypto ceiling.",
    )
    @click.option(
        "--rpc-seconds",
        type=click.FloatRange(min=0),
        default=3.0,
        show_default=True,
        help="Seconds per server of the RPC read comparison (0: skip).",
    )
    @click.option(
        "--json",
        "json_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Also write the full report as JSON to this file.",
    )
    @click.option(
        "--html",
        "html_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Also write the report as a self-contained HTML page to this file.",
    )
    def bench(
        directory: Path | None,
        urls: tuple[str, ...],
        cert: Path | None,
        key: Path | None,
        channel: str | None,
        nodes: int | None,
        workloads: tuple[str, ...],
        keys: int,
        value_bytes: int,
        tps: float | None,
        outstanding: int | None,
        ramp: str | None,
        duration: float | None,
        txs: int | None,
        workers: int,
        batch: int,
        max_requests: int,
        drain: float,
        seed: int,
        endorsers: int | None,
        ceiling_seconds: float,
        rpc_seconds: float,
        json_path: Path | None,
        html_path: Path | None,
    ) -> None:
        """Load-test a network: committed tx/s, latency, failures, node CPU/RSS, crypto ceiling."""
        from rich.console import Console

        from secprivnode.bench.report import render_html, render_nodes, render_table, write_json
        from secprivnode.bench.runner import BenchOptions, run_bench

        # Piped output (CI logs, files) gets a width that fits the whole table.
        console = Console() if sys.stdout.isatty() else Console(width=170)
        if duration is None and txs is None:
            duration = 30.0
        control = _control(tps, outstanding, ramp, duration)
        try:
            rounds = tuple(WorkloadSpec(w, value_bytes, keys) for w in (workloads or ("write",)))
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
        opts = BenchOptions(
            rounds=rounds,
            control=control,
            duration_s=duration,
            txs=txs,
            workers=workers,
            batch=batch,
            max_requests=max_requests,
            drain_s=drain,
            seed=seed,
            ceiling_s=ceiling_seconds,
            endorsers=endorsers,
            rpc_seconds=rpc_seconds,
        )

        def log(msg: str) -> None:
            console.log(msg)

        with _progress(console) as progress:
            try:
                with _target(directory, urls, cert, key, channel, nodes, workers, log) as target:
                    doc, stats = run_bench(target, opts, progress=progress, log=log)
            except (RuntimeError, OSError) as exc:
                raise click.ClickException(str(exc)) from exc
        console.print(render_table(stats))
        console.print(render_nodes(stats))
        c = doc["crypto"]
        sig = c["signatures_per_tx"]
        console.print(
            f"crypto ceiling: {c['verify_per_s']:.0f} verifies/s and {c['sign_per_s']:.0f} signs/s per core "
            f"x {c['cores']} cores; per tx {sig['formula']}"
        )
        console.print(
            f"  ceiling = verify_rate x cores / (verifies/tx + signs/tx x verify_rate/sign_rate) "
            f"= {doc['ceiling_tps']:.0f} tx/s; committed {doc['committed_tps']:.0f} tx/s "
            f"= {100 * (doc['ceiling_fraction'] or 0):.1f}% of it"
        )
        if "node_cpu_ms_per_tx" in doc:
            console.print(
                f"CPU per committed tx: nodes {doc['node_cpu_ms_per_tx']:.2f} ms (all together), load generator "
                f"{doc['client_cpu_ms_per_tx']:.2f} ms -> {doc['capacity_tps_estimate']} tx/s if they had every core"
            )
        if "rpc_reads" in doc:
            r = doc["rpc_reads"]
            console.print(
                f"RPC reads ({', '.join(r['methods'])}, concurrency {r['concurrency']}): node "
                f"{r['node']['requests_per_s']:.0f}/s, minimal aiohttp handler {r['minimal']['requests_per_s']:.0f}/s, "
                f"ratio {r['ratio']}"
            )
        if json_path is not None:
            write_json(json_path, doc)
            console.print(f"wrote {json_path}")
        if html_path is not None:
            html_path.write_text(render_html(doc, stats))
            console.print(f"wrote {html_path}")


@contextlib.contextmanager
def _progress(console: Any) -> Iterator[Any]:
    """A rich progress bar per round, fed by the runner's progress callback. When the output is
    not a terminal (CI, a log file) a line every PROGRESS_LOG_EVERY_S seconds replaces it."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
    tasks: dict[str, Any] = {}
    last_log = [0.0]

    def update(name: str, sent: int, ok: int, conflicts: int, fail: int, total: int | None) -> None:
        if name not in tasks:
            tasks[name] = bars.add_task(name, total=total, info="")
        info = f"sent {sent}  ok {ok}  mvcc {conflicts}  fail {fail}"
        bars.update(tasks[name], completed=ok + conflicts + fail, info=info)
        now = time.monotonic()
        if not console.is_terminal and now - last_log[0] >= PROGRESS_LOG_EVERY_S:
            last_log[0] = now
            console.log(f"{name}: {info}")

    with bars:
        yield update
