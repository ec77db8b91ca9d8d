"""Four node processes on 127.0.0.1 over the real TLS transport and LevelDB ledgers.

One process orders signed blocks; one of the others is stopped, misses more than 200 blocks,
restarts on the same database and catches up by state transfer to the same tip hash.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from p2p_harness import Pki, free_port, wait_until

from crypto.ca import Role
from crypto.signing import PrivateKey

log = logging.getLogger("p2p.multiprocess")

ENTRY = Path(__file__).with_name("node_main.py")
REPO = Path(__file__).resolve().parents[3]
NODES = [("p0", "council"), ("p1", "transport"), ("p2", "council"), ("p3", "transport")]


def _write_pki(d: Path) -> None:
    pki = Pki.create(["council", "transport"])
    (d / "orgs").mkdir()
    for org, ca in pki.cas.items():
        (d / "orgs" / f"{org}.pem").write_bytes(ca.cert_pem)
    for name, org in NODES:
        creds = pki.node(org, name)
        (d / f"{name}.cert.pem").write_bytes(creds.cert_pem)
        (d / f"{name}.key.pem").write_bytes(creds.key.to_pem())
    orderer = pki.node("council", "orderer1", Role.NODE)
    (d / "orderer.cert.pem").write_bytes(orderer.cert_pem)
    (d / "orderer.key.pem").write_bytes(PrivateKey.to_pem(orderer.key))


class Cluster:
    def __init__(self, d: Path) -> None:
        self.d = d
        self.ports = {name: free_port() for name, _ in NODES}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        peers = ",".join(f"{n}=127.0.0.1:{p}" for n, p in self.ports.items() if n != name)
        cmd = [sys.executable, str(ENTRY), "--dir", str(self.d), "--name", name, "--port", str(self.ports[name])]
        cmd += ["--peers", peers] + (["--produce"] if name == "p0" else [])
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        logf = open(self.d / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        logf.close()
        log.info("started %s on port %d (pid %d)", name, self.ports[name], self.procs[name].pid)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=15) == 0, f"{name} exited with {proc.returncode}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def status(self, name: str) -> dict[str, object]:
        try:
            return json.loads((self.d / f"{name}.status.json").read_text())
        except (OSError, ValueError):
            return {"height": -1, "tip": ""}

    def set_target(self, n: int) -> None:
        tmp = self.d / "target.tmp"
        tmp.write_text(str(n))
        os.replace(tmp, self.d / "target")

    def heights(self) -> dict[str, object]:
        return {n: self.status(n)["height"] for n in self.procs}

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} died: " + (self.d / f"{name}.log").read_text()[-3000:]

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.procs.clear()


@pytest.mark.functional
def test_stopped_node_misses_200_blocks_and_catches_up(tmp_path: Path) -> None:
    _write_pki(tmp_path)
    c = Cluster(tmp_path)
    try:
        for name, _ in NODES:
            c.start(name)

        def all_at(n: int, names: list[str]) -> bool:
            c.check_alive()
            return all(c.status(x)["height"] == n for x in names)

        everyone = [n for n, _ in NODES]
        c.set_target(20)
        wait_until(lambda: all_at(20, everyone), 60, "all four nodes at height 20")
        log.info("stopping p3 at height 20")
        c.stop("p3")
        c.set_target(260)
        wait_until(lambda: all_at(260, ["p0", "p1", "p2"]), 90, "the others at height 260")
        assert c.status("p3")["height"] == 20  # its last status before stopping
        log.info("restarting p3: it must fetch 240 blocks")
        c.start("p3")
        wait_until(lambda: all_at(260, everyone), 90, "p3 caught up")
        assert c.status("p3")["delivered"] == 240  # all by gossip since the restart
        tips = {c.status(n)["tip"] for n in everyone}
        assert len(tips) == 1 and tips != {""}
        for name in everyone:
            c.stop(name)
        log_text = (tmp_path / "p3.log").read_text()
        assert "Traceback" not in log_text, log_text[-3000:]
    finally:
        c.kill_all()
