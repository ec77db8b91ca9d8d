"""A city network with one node per host: each node in its own network namespace, and the faults.

:class:`Testbed` is a :class:`framework.CityTest` whose nodes live on a :class:`~testbed.netns.NetBed`
instead of 127.0.0.1. The node configurations are written by ``secprivnode.network.init_network``
with one host address per node, so they have the shape of ``configs/deployment/`` (P2P on every
interface with an advertised address, RPC and operations on the host's own address, JSON logs).
A last namespace, ``client``, is the clients' host. The test process reads the nodes through the
bed's bridge address (the control plane), which partitions never cut.

Faults, all in protocol terms: :meth:`Testbed.partition` / :meth:`Testbed.heal` (from the
bed), :meth:`Testbed.kill` (SIGKILL) and :meth:`Testbed.restart`, :meth:`Testbed.pause` /
:meth:`Testbed.resume` (SIGSTOP / SIGCONT), :meth:`Testbed.fill_disk` / :meth:`Testbed.free_disk`
(the node's data directory is a small tmpfs), :meth:`Testbed.wipe` (an empty data directory), and
link impairment through ``bed.net.netem``.

Teardown runs however the run ends: the context manager's exit, an ``atexit`` hook, and SIGTERM /
SIGHUP turned into ``SystemExit`` so that the same exit path runs; ``scripts/testbed cleanup``
removes what a SIGKILLed run left. This module is test-only: nothing the node imports uses it.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from framework import CityTest, TestNode, wait_until

from crypto.ca import default_org_names
from secprivnode.network import init_network, load_network
from testbed.checker import Report, check
from testbed.netns import NetBed, NetnsError

__all__ = ["CLIENT_HOST", "Testbed"]

log = logging.getLogger("testbed")

CLIENT_HOST = "client"
# Raft timing of the bed's nodes: the defaults of a deployment (100 ms ticks, 1 s election).
RAFT_OPTIONS = {"tick_ms": 100, "election_ticks": 10}
# Size of a node's data tmpfs when its disk can be filled: a few thousand small blocks fit.
DISK_MB = 256
# Seconds the workload may take to finish its in-flight operations after SIGTERM (one op timeout).
WORKLOAD_STOP_S = 60.0
# Bytes written per call while filling a disk; the last call stops at ENOSPC.
FILL_CHUNK_BYTES = 1024 * 1024
BALLAST = ".ballast"


class Testbed(CityTest):
    """``with Testbed(work_dir) as bed:`` — nodes up, each in its own namespace; all removed on exit."""

    def __init__(self, work_dir: Path, *, orgs: int = 3, disk_nodes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.num_orgs = orgs
        self.work_dir = work_dir
        self.disk_nodes = disk_nodes  # names whose data dir is a tmpfs (fill_disk works on them)
        self.paused: set[str] = set()
        self._closed = False
        self._old_handlers: dict[int, Any] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Testbed:
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            self.setup(self.work_dir)
        except BaseException:
            self.close(ok=False)
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(ok=exc_type is None)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    def setup(self, tmp_path: Path) -> None:
        names = [f"{org}-node1" for org in default_org_names(self.num_orgs)]
        self.net = NetBed([*names, CLIENT_HOST])
        self.net.create()
        self.dir = tmp_path / f"bed-{self.net.run_id}"
        log.info("test bed %s: bridge %s (%s), %s", self.net.run_id, self.net.bridge, self.net.gateway,
                 ", ".join(f"{h.label}={h.addr}" for h in self.net.hosts.values()))  # fmt: skip
        init_network(
            self.dir,
            orgs=self.num_orgs,
            hosts=[self.net.hosts[n].addr for n in names],
            node_options={"raft": dict(RAFT_OPTIONS), "logging": {"format": "json"}},
        )
        self.channel, specs = load_network(self.dir)
        self.nodes = [TestNode(s, self.dir) for s in specs]
        for n in self.nodes:
            n.exec_prefix = self.net.exec_prefix(n.name)
            if n.name in self.disk_nodes:
                self._mount_disk(n)
        self.start_nodes()

    def close(self, ok: bool = False) -> None:
        """Stop every node, unmount, remove the namespaces; keep the directory if not ``ok``."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        try:
            for name in list(self.paused):
                self.resume(name)
            for n in self.nodes:
                self._ballast(n).unlink(missing_ok=True)
            if self.nodes:
                self.teardown(ok)
        finally:
            net: NetBed | None = getattr(self, "net", None)
            if net is not None:
                for mount in list(net.mounts):
                    subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
                net.destroy()

    # ------------------------------------------------------------------ nodes
    def node(self, name: str) -> TestNode:
        return next(n for n in self.nodes if n.name == name)

    def addr(self, name: str) -> str:
        return self.net.hosts[name].addr

    def kill(self, name: str) -> None:
        log.info("SIGKILL %s", name)
        self.node(name).kill()

    def restart(self, name: str, *, wait: bool = True) -> None:
        log.info("start %s", name)
        n = self.node(name)
        n.start()
        if wait:
            n.wait_healthy()

    def pause(self, name: str) -> None:
        n = self.node(name)
        assert n.pid is not None
        log.info("SIGSTOP %s", name)
        os.kill(n.pid, signal.SIGSTOP)
        self.paused.add(name)

    def resume(self, name: str) -> None:
        n = self.node(name)
        if n.pid is not None and n.running():
            log.info("SIGCONT %s", name)
            os.kill(n.pid, signal.SIGCONT)
        self.paused.discard(name)

    def wipe(self, name: str) -> None:
        """Kill the node and empty its data directory (a replaced disk)."""
        self.kill(name)
        data = self.node(name).spec.dir / "data"
        for child in data.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        log.info("wiped %s", data)

    # ------------------------------------------------------------------ disks
    def _mount_disk(self, n: TestNode) -> None:
        data = n.spec.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.net.record_mount(str(data))
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", str(data)], check=True)

    def _ballast(self, n: TestNode) -> Path:
        return n.spec.dir / "data" / BALLAST

    def fill_disk(self, name: str) -> int:
        """Fill the node's data tmpfs to the last byte; return the bytes written."""
        n = self.node(name)
        if n.name not in self.disk_nodes:
            raise NetnsError(f"{name}'s data directory is not a test tmpfs (pass disk_nodes)")
        written = 0
        chunk = b"\0" * FILL_CHUNK_BYTES
        with open(self._ballast(n), "ab", buffering=0) as f:
            while True:
                try:
                    written += f.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        break
                    chunk = chunk[: len(chunk) // 2]
        log.info("%s: disk full (%d MiB of ballast)", name, written >> 20)
        return written

    def free_disk(self, name: str) -> None:
        self._ballast(self.node(name)).unlink(missing_ok=True)
        log.info("%s: disk space back", name)

    # ------------------------------------------------------------------ reading
    def heights(self) -> dict[str, int]:
        out = {}
        for n in self.nodes:
            if n.running() and n.name not in self.paused:
                try:
                    out[n.name] = n.height()
                except (OSError, ValueError, AssertionError):  # unreachable or refusing: no height now
                    continue
        return out

    def wait_commits(self, names: list[str], blocks: int, timeout_s: float = 60.0) -> None:
        """Wait until each named node's height grew by ``blocks``."""
        start = {n: self.node(n).height() for n in names}
        wait_until(
            lambda: all(self.node(n).height() >= start[n] + blocks for n in names),
            timeout_s,
            what=f"{blocks} new blocks on {', '.join(names)}",
        )

    def new_leader(self, among: list[str], old: str, timeout_s: float = 30.0) -> TestNode:
        """The leader ``among`` agree on once it is no longer ``old``."""

        def other() -> TestNode | None:
            names = {self.node(n).rpc.raft_status().get("leader") for n in among}
            if len(names) == 1 and None not in names and old not in names:
                return self.node(names.pop())
            return None

        return wait_until(other, timeout_s, what=f"{', '.join(among)} agreeing on a leader other than {old}")

    def stalled(self, name: str, for_s: float) -> bool:
        """Whether the node's height stays put for ``for_s`` seconds."""
        h = self.node(name).height()
        time.sleep(for_s)
        return self.node(name).height() == h

    # ------------------------------------------------------------------ workload and checker
    def start_workload(self, history: Path, *, clients: int = 4, keys: int = 8, seed: int = 1) -> subprocess.Popen[str]:
        """Start the workload in the clients' namespace, appending to ``history``."""
        tests = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), str(tests / "functional")])}
        cmd = [*self.net.exec_prefix(CLIENT_HOST), sys.executable, "-m", "testbed.workload"]
        cmd += ["--net", str(self.dir), "--history", str(history)]
        cmd += ["--clients", str(clients), "--keys", str(keys), "--seed", str(seed)]
        log.info("workload: %d clients on %d keys, history %s", clients, keys, history)
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_acked(self, history: Path, more: int, timeout_s: float = 60.0) -> int:
        """Wait until the history holds ``more`` acknowledged operations beyond those it holds now."""

        def acked() -> int:
            try:
                return history.read_text().count('"type": "ok"')
            except FileNotFoundError:
                return 0

        target = acked() + more
        wait_until(lambda: acked() >= target, timeout_s, what=f"{more} more acknowledged operations")
        return target

    def stop_workload(self, proc: subprocess.Popen[str]) -> dict[str, int]:
        """SIGTERM the workload, let its in-flight operations finish; return its outcome counts."""
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=WORKLOAD_STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the workload did not stop within {WORKLOAD_STOP_S}s:\n{err[-2000:]}") from None
        assert proc.returncode == 0, f"workload exited with {proc.returncode}:\n{err[-3000:]}"
        counts: dict[str, int] = json.loads(out.strip().splitlines()[-1])
        log.info("workload outcomes: %s", counts)
        return counts

    def finish(self, load: subprocess.Popen[str], history: Path) -> Report:
        """Stop the workload, drain, check the history; fail the test with the report if it fails."""
        self.stop_workload(load)
        report = self.drain_and_check(history)
        assert report.ok, report.text()
        return report

    def drain_and_check(self, history: Path, timeout_s: float = 120.0) -> Report:
        """Wait for equal tips, kill every node, and check the history against their ledgers."""
        for name in list(self.paused):
            self.resume(name)
        for n in self.nodes:
            if not n.running():
                self.restart(n.name)
        height, tip = self.sync_blocks(timeout_s=timeout_s)
        log.info("drained: every node at height %d, tip %s", height, tip[:18])
        # SIGKILL, not SIGTERM: the checker then also proves that the ledgers survive a crash at
        # an arbitrary point (LevelDB recovers its log on open), and no graceful shutdown's
        # leadership hand-over is waited for.
        for n in self.nodes:
            n.kill()
        report = check(history, {n.name: n.spec.dir / "data" for n in self.nodes}, self.channel)
        log.info("%s", report.text())
        return report
