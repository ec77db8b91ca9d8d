"""``secprivnode bench``: drive a network with worker processes, watch it, and report.

A run is:

1. the target — a running network (``--dir``; or ``--url`` plus an identity), or a network of
   ``--nodes N`` started here in a temporary directory on free ports and torn down at the end;
2. the crypto ceiling: native ECDSA rates measured for about a second each (before any load, so
   nothing else competes for the core);
3. for each workload round: an optional setup (the rmw/query key space), then ``--workers``
   processes, each with its own client identity and node (round robin), sending under the rate
   controller; a sampler thread reads each node's CPU and RSS with psutil from its pid file;
4. the RPC read comparison (:mod:`.reads`) on committed transactions and keys of the last round;
5. the table, and optionally JSON and HTML.

This module never changes a network it did not start, beyond the transactions it submits.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from crypto.native import describe as describe_native_hashing
from secprivnode.bench import ceiling as ceiling_mod
from secprivnode.bench.rate import FixedOutstanding, RateControl, split
from secprivnode.bench.report import NodeUsage, RoundStats, summarize
from secprivnode.bench.worker import WorkerConfig, WorkerResult, worker_main
from secprivnode.bench.workload import WorkloadSpec, setup_ops
from secprivnode.network import init_network, load_network, network_down, network_up, rpc_call

__all__ = ["BenchOptions", "RoundOutcome", "Target", "free_base_port", "local_network", "run_bench", "target_from_dir"]

# Seconds between the workers' launch and the round's start: spawning a Python process and
# importing the client takes about a second on this class of machine.
START_DELAY_S = 3.0
# How often the sampler reads node CPU and RSS.
SAMPLE_EVERY_S = 1.0
# The report keeps one RSS sample per this many seconds (a 1M-transaction run is ~200 points).
RSS_SERIES_EVERY_S = 10
# Concurrent setup transactions: the key space is created as fast as the network takes it.
SETUP_OUTSTANDING = 2000
# Ports a local network needs per node (P2P, RPC, operations) are base+i, base+1000+i, base+2000+i.
PORT_SEARCH = range(20000, 40000, 97)


@dataclass(frozen=True, slots=True)
class Target:
    urls: tuple[str, ...]
    identities: tuple[tuple[bytes, bytes], ...]  # (cert PEM, key PEM)
    channel: str
    pids: tuple[tuple[str, int | None], ...] = ()
    nodes: int = 1


@dataclass(frozen=True, slots=True)
class BenchOptions:
    rounds: tuple[WorkloadSpec, ...]
    control: RateControl
    duration_s: float | None = 30.0
    txs: int | None = None
    workers: int = 3
    batch: int = 50
    max_requests: int = 16
    drain_s: float = 30.0
    seed: int = 1
    ceiling_s: float = 1.0
    endorsers: int | None = None  # None: counted on a committed transaction of the run
    rpc_seconds: float = 3.0  # 0: skip the RPC read comparison
    rpc_concurrency: int = 32


@dataclass(slots=True)
class RoundOutcome:
    stats: RoundStats
    results: list[WorkerResult] = field(default_factory=list)


Progress = Callable[[str, int, int, int, int, int | None], None]  # (round, sent, ok, conflicts, fail, total)


# ---- targets -----------------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(nodes: int, candidates: Sequence[int] = PORT_SEARCH) -> int:
    """A base port whose P2P, RPC and operations ports for ``nodes`` nodes are all free now."""
    for base in candidates:
        ports = [base + off + i for off in (0, 1000, 2000) for i in range(nodes)]
        if max(ports) < 65536 and all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free port range for a local network")


@contextmanager
def local_network(nodes: int, log: Callable[[str], None] = lambda _m: None) -> Iterator[Path]:
    """A fresh network of ``nodes`` single-node organisations, running; removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="secprivnode-bench-"))
    try:
        base = free_base_port(nodes)
        init_network(directory, orgs=nodes, base_port=base)
        log(f"starting {nodes} nodes in {directory} (ports from {base})")
        network_up(directory)
        yield directory
    finally:
        log("stopping the local network")
        try:
            network_down(directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def target_from_dir(directory: Path, workers: int = 1, *, now: int | None = None) -> Target:
    """Every node of a network directory, and at least ``workers`` client identities: the orgs'
    client1/client2 first, then identities issued for the run by the orgs' CAs in turn (kept in
    memory only; the channel's MSP accepts any client certificate its org CA signed)."""
    channel, nodes = load_network(directory)
    orgs = list(dict.fromkeys(n.org for n in nodes))
    idents = []
    for user in ("client1", "client2"):
        for org in orgs:
            base = directory / "crypto" / org / "users" / user
            if (base / "cert.pem").exists():
                idents.append(((base / "cert.pem").read_bytes(), (base / "key.pem").read_bytes()))
    if len(idents) < workers:
        idents += _issue_identities(directory, orgs, workers - len(idents), now)
    if not idents:
        raise RuntimeError(f"no client identities under {directory / 'crypto'}")
    pids: list[tuple[str, int | None]] = []
    for n in nodes:
        try:
            pids.append((n.name, int(n.pid_file.read_text().strip())))
        except (OSError, ValueError):
            pids.append((n.name, None))
    return Target(tuple(n.rpc_url for n in nodes), tuple(idents), channel, tuple(pids), len(nodes))


def _issue_identities(directory: Path, orgs: Sequence[str], count: int, now: int | None) -> list[tuple[bytes, bytes]]:
    from crypto.ca import CertificateAuthority, Role

    # Valid from a minute ago: nodes judge certificates by their own clock (endorsement) and by
    # block time (validation), and neither may be a moment behind the clock that issued them.
    issued_at = (int(time.time()) if now is None else now) - 60
    cas: dict[str, CertificateAuthority] = {}
    out = []
    for i in range(count):
        org = orgs[i % len(orgs)]
        if org not in cas:
            try:
                cas[org] = CertificateAuthority.load(directory / "crypto" / org / "ca")
            except ValueError as exc:
                raise RuntimeError(f"cannot issue benchmark identities: {exc}") from exc
        key, cert = cas[org].issue(f"bench-client{i + 1}", Role.CLIENT, now=issued_at, valid_days=1)
        out.append((cert, key.to_pem()))
    return out


# ---- node sampling -------------------------------------------------------------------------------------


class NodeSampler:
    """Reads CPU% and RSS of each node process once a second in a thread."""

    def __init__(self, pids: Sequence[tuple[str, int | None]]) -> None:
        self._procs: list[tuple[str, int | None, psutil.Process | None]] = []
        for name, pid in pids:
            proc = None
            if pid is not None:
                try:
                    proc = psutil.Process(pid)
                    proc.cpu_percent(None)  # the first call only starts the measurement
                except psutil.Error:
                    proc = None
            self._procs.append((name, pid, proc))
        self.cpu: dict[str, list[float]] = {n: [] for n, _, _ in self._procs}
        self.rss: dict[str, list[float]] = {n: [] for n, _, _ in self._procs}
        self._cpu_s: dict[str, list[float]] = {n: [] for n, _, _ in self._procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def _sample(self, with_cpu: bool) -> None:
        for name, _, proc in self._procs:
            if proc is None:
                continue
            try:
                if not with_cpu:  # the first and last samples: total CPU time over the round
                    t = proc.cpu_times()
                    self._cpu_s[name].append(t.user + t.system)
                if with_cpu:
                    self.cpu[name].append(proc.cpu_percent(None))
                self.rss[name].append(proc.memory_info().rss / 2**20)
            except psutil.Error:
                pass

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._sample(True)

    def __enter__(self) -> NodeSampler:
        self._sample(False)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(False)

    def usage(self) -> list[NodeUsage]:
        out = []
        for name, pid, _ in self._procs:
            cpu, rss, cpu_s = self.cpu[name], self.rss[name], self._cpu_s[name]
            out.append(
                NodeUsage(
                    name,
                    pid,
                    sum(cpu) / len(cpu) if cpu else 0.0,
                    max(cpu, default=0.0),
                    rss[0] if rss else 0.0,
                    rss[-1] if rss else 0.0,
                    max(rss, default=0.0),
                    cpu_s[-1] - cpu_s[0] if len(cpu_s) >= 2 else 0.0,
                    tuple(round(x, 1) for x in rss[:: int(RSS_SERIES_EVERY_S / SAMPLE_EVERY_S)]),
                )
            )
        return out


# ---- rounds --------------------------------------------------------------------------------------------


def _run_workers(configs: list[WorkerConfig], progress: Callable[[int, int, int, int], None]) -> list[WorkerResult]:
    ctx = mp.get_context("spawn")
    q: Any = ctx.Queue()
    procs = [ctx.Process(target=worker_main, args=(c, q), name=f"bench-worker-{c.index}") for c in configs]
    for p in procs:
        p.start()
    state = {c.index: (0, 0, 0, 0) for c in configs}
    results: dict[int, WorkerResult] = {}
    failures: list[str] = []
    try:
        while len(results) + len(failures) < len(configs):
            try:
                msg = q.get(timeout=0.5)
            except queue_mod.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead and not q.qsize():
                    failures += [f"{p.name} exited with {p.exitcode}" for p in dead if p.name not in failures]
                    if len(results) + len(failures) >= len(configs):
                        break
                continue
            kind, index = msg[0], msg[1]
            if kind == "progress":
                state[index] = tuple(msg[2:6])
                tot = [sum(s[k] for s in state.values()) for k in range(4)]
                progress(*tot)
            elif kind == "result":
                results[index] = msg[2]
            else:
                failures.append(f"worker {index}: {msg[2]}")
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join()
    if failures:
        raise RuntimeError("load workers failed: " + "; ".join(failures))
    return [results[c.index] for c in configs]


def _worker_configs(
    target: Target, spec: WorkloadSpec, control: RateControl, opts: BenchOptions, workers: int, **extra: Any
) -> list[WorkerConfig]:
    start_at = time.monotonic() + START_DELAY_S
    controls = split(control, workers)
    txs_share = (
        [None] * workers
        if opts.txs is None
        else [opts.txs // workers + (i < opts.txs % workers) for i in range(workers)]
    )
    configs = []
    identities = _senders(target, spec)
    for i in range(workers):
        cert, key = identities[i % len(identities)]
        kw: dict[str, Any] = {
            "index": i,
            "url": target.urls[i % len(target.urls)],
            "cert_pem": cert,
            "key_pem": key,
            "channel": target.channel,
            "spec": spec,
            "control": controls[i],
            "start_at": start_at,
            "duration_s": opts.duration_s,
            "txs": txs_share[i],
            "batch": opts.batch,
            "max_requests": opts.max_requests,
            "drain_s": opts.drain_s,
            "seed": opts.seed,
        }
        kw.update(extra)
        configs.append(WorkerConfig(**kw))
    return configs


def _org(cert_pem: bytes) -> str:
    from crypto.msp import Identity

    return Identity.from_cert(cert_pem).org


def _senders(target: Target, spec: WorkloadSpec) -> tuple[tuple[bytes, bytes], ...]:
    """The identities a round sends as: all of them, or for rounds that update assets only those
    of the organisation that owns the assets (the first identity's; see ``run_setup``)."""
    if not spec.updates_assets:
        return target.identities
    owner = _org(target.identities[0][0])
    return tuple(i for i in target.identities if _org(i[0]) == owner)


def run_setup(target: Target, spec: WorkloadSpec, opts: BenchOptions, progress: Progress | None) -> RoundOutcome:
    """Create the rmw/query key space (one worker, closed loop), owned by the first identity's org."""
    ops = tuple(setup_ops(spec, _org(target.identities[0][0])))
    cfg = _worker_configs(
        target, spec, FixedOutstanding(SETUP_OUTSTANDING), opts, 1, ops=ops, duration_s=None, txs=None
    )
    return _round(f"setup-{spec.name}", cfg, target, progress, total=len(ops))


def _round(
    name: str, configs: list[WorkerConfig], target: Target, progress: Progress | None, total: int | None
) -> RoundOutcome:
    def report(sent: int, ok: int, conflicts: int, fail: int) -> None:
        if progress is not None:
            progress(name, sent, ok, conflicts, fail, total)

    with NodeSampler(target.pids) as sampler:
        results = _run_workers(configs, report)
    submit = [s for r in results for s in r.submit]
    done = [d for r in results for d in r.done]
    outcome = [o for r in results for o in r.outcome]
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    stats = summarize(name, configs[0].control.describe() + f" x{len(configs)}", submit, done, outcome, errors)
    stats.nodes = sampler.usage()
    wall = max((r.wall_s for r in results), default=0.0)
    stats.client_cpu_s = sum(r.cpu_s for r in results)
    stats.client_cpu_percent = 100 * stats.client_cpu_s / wall if wall > 0 else 0.0
    return RoundOutcome(stats, results)


def run_round(target: Target, spec: WorkloadSpec, opts: BenchOptions, progress: Progress | None) -> RoundOutcome:
    configs = _worker_configs(target, spec, opts.control, opts, opts.workers)
    return _round(spec.name, configs, target, progress, total=opts.txs)


# ---- the whole run -------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import platform
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for pkg in ("secprivnode", "aiohttp", "cryptography", "msgpack", "plyvel", "uvloop"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "packages": versions,
        "batch_hashing": describe_native_hashing(),
    }


def _endorsements(target: Target, tx_ids: Sequence[str]) -> int | None:
    """Endorsements carried by a committed transaction of the run (what the policy needed)."""
    if not tx_ids:
        return None
    try:
        tx = rpc_call(target.urls[0], "chain_getTransaction", {"tx_id": tx_ids[0], "channel": target.channel})
    except (OSError, ValueError, RuntimeError):
        return None
    return len(tx.get("endorsers") or []) or None


def _cpu_per_tx(r: RoundStats) -> dict[str, Any]:
    """CPU milliseconds per committed transaction, all nodes together and the load generator.

    Unlike tx/s this hardly depends on what else the machine runs, so it shows what a change
    to the node saves; ``capacity_tps_estimate`` is the rate at which the whole network plus the
    load generator would keep every core busy (``cores x 1000 / ms per tx``)."""
    committed = r.succ + r.conflicts
    if committed == 0:
        return {}
    node_ms = 1000 * sum(n.cpu_s for n in r.nodes) / committed
    client_ms = 1000 * r.client_cpu_s / committed
    cores = os.cpu_count() or 1
    total = node_ms + client_ms
    return {
        "node_cpu_ms_per_tx": round(node_ms, 3),
        "client_cpu_ms_per_tx": round(client_ms, 3),
        "capacity_tps_estimate": round(cores * 1000 / total, 1) if total > 0 else None,
    }


def run_bench(
    target: Target,
    opts: BenchOptions,
    *,
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> tuple[dict[str, Any], list[RoundStats]]:
    """Measure the ceiling, run every round, compare RPC reads; the JSON document and the rounds."""
    from secprivnode.bench import reads

    for url in target.urls:
        try:
            rpc_call(url, "chain_height", {"channel": target.channel})
        except (OSError, ValueError, RuntimeError) as exc:
            raise RuntimeError(f"node {url} is not answering ({exc}); is the network up?") from exc
    log(f"measuring native ECDSA rates ({opts.ceiling_s:g} s each, one core)")
    rates = ceiling_mod.measure_rates(opts.ceiling_s)
    prefix = "b" + secrets.token_hex(4)
    rounds: list[RoundStats] = []
    outcomes: list[RoundOutcome] = []
    for spec in opts.rounds:
        spec = WorkloadSpec(spec.name, spec.value_bytes, spec.keys, spec.mix, prefix)
        if spec.needs_assets:
            log(f"setup: creating {spec.keys} assets for {spec.name}")
            setup = run_setup(target, spec, opts, progress)
            if setup.stats.fail:
                raise RuntimeError(f"setup failed for {setup.stats.fail} assets: {dict(setup.stats.errors)}")
        log(f"round {spec.name}: {opts.control.describe()}, {opts.workers} workers")
        out = run_round(target, spec, opts, progress)
        outcomes.append(out)
        rounds.append(out.stats)
    main = max(rounds, key=lambda r: r.throughput)
    block_txs = [b for o in outcomes for r in o.results for b in r.block_txs]
    avg_block = sum(block_txs) / len(block_txs) if block_txs else 1.0
    tx_ids = [t for o in outcomes for r in o.results for t in r.tx_ids]
    endorsers = opts.endorsers or _endorsements(target, tx_ids) or 1
    count = ceiling_mod.count_signatures(target.nodes, min(endorsers, target.nodes), avg_block)
    ceiling = ceiling_mod.ceiling_tps(rates, count)
    doc: dict[str, Any] = {
        "committed_tps": round(main.throughput, 1),
        "p99_s": None if main.p99 != main.p99 else round(main.p99, 4),
        "failures": sum(r.fail for r in rounds),
        "mvcc_conflicts": sum(r.conflicts for r in rounds),
        "ceiling_tps": round(ceiling, 1),
        "ceiling_fraction": round(main.throughput / ceiling, 4) if ceiling > 0 else None,
        "ceiling_formula": count.formula(),
        "main_round": main.name,
        "nodes": target.nodes,
        "workers": opts.workers,
        "control": opts.control.describe(),
        "duration_s": opts.duration_s,
        "avg_block_txs": round(avg_block, 1),
        **_cpu_per_tx(main),
        "crypto": {**rates.to_json(), "signatures_per_tx": count.to_json()},
        "rounds": [r.to_json() for r in rounds],
        "machine": machine_info(),
    }
    if opts.rpc_seconds > 0 and tx_ids:
        log(f"RPC reads: node vs minimal aiohttp handler, {opts.rpc_seconds:g} s each")
        doc["rpc_reads"] = reads.compare(target.urls[0], target.channel, tx_ids, opts.rpc_seconds, opts.rpc_concurrency)
        doc["rpc_read_ratio"] = doc["rpc_reads"]["ratio"]
    return doc, rounds
