"""Functional test framework: real ``secprivnode`` processes on 127.0.0.1 with a throwaway PKI.

Modelled on Bitcoin Core's test framework: a test subclasses :class:`CityTest`, overrides
``set_test_params`` and ``run_test``, and talks to the nodes only through their public interfaces
(JSON-RPC, the CLI, the wire). Helpers speak in protocol terms: :meth:`CityTest.sync_blocks`
("wait until everybody has the same tip"), :func:`wait_until`, :meth:`TestNode.kill`.

Ports are chosen at run time (a free block of ports is probed); the network directory of a failed
test is kept and its path logged, together with every node's log tail.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secprivnode.network import NetworkError, NetworkNode, init_network, load_network, rpc_call

log = logging.getLogger("functional")

__all__ = ["CityTest", "RpcFailure", "TestNode", "free_base_port", "wait_until"]


class RpcFailure(AssertionError):
    """A JSON-RPC call returned an error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


def wait_until(predicate: Callable[[], Any], timeout_s: float = 30.0, *, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, RpcFailure, NetworkError, ValueError) as exc:
            last_exc = exc
        time.sleep(0.1)
    raise AssertionError(
        f"timed out after {timeout_s}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
    )


def _ports_free(ports: list[int]) -> bool:
    for p in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def free_base_port(count: int, rng: random.Random) -> int:
    """A base port B such that B..B+count, B+1000.., B+2000.. are all free right now."""
    for _ in range(200):
        base = rng.randrange(20000, 40000)
        ports = [base + off + i for off in (0, 1000, 2000) for i in range(count)]
        if _ports_free(ports):
            return base
    raise RuntimeError("no free port range found")


class _RpcProxy:
    def __init__(self, url: str) -> None:
        self._url = url

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return raw_rpc(self._url, method, list(args) if args else kwargs)

        return call


def raw_rpc(url: str, method: str, params: Any, timeout_s: float = 30.0) -> Any:
    import json
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        e = reply["error"]
        raise RpcFailure(e["code"], e["message"], e.get("data"))
    return reply["result"]


class TestNode:
    """One node process and an RPC proxy to it."""

    __test__ = False  # not a pytest test class

    def __init__(self, spec: NetworkNode, net_dir: Path) -> None:
        self.spec = spec
        self.name = spec.name
        self.net_dir = net_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.rpc = _RpcProxy(spec.rpc_url)

    @property
    def url(self) -> str:
        return self.spec.rpc_url

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} already running"
        logf = open(self.spec.log_file, "ab")  # noqa: SIM115 - owned by the child
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "secprivnode", "node", "run", "--config", str(self.spec.config)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.spec.dir,
                start_new_session=True,
            )
        finally:
            logf.close()
        self.spec.pid_file.write_text(f"{self.process.pid}\n")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(self.spec.ops_url + "healthz", timeout=2.0) as resp:
                return resp.status == 200
        except OSError:
            return False

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        def ok() -> bool:
            if not self.running():
                raise AssertionError(f"{self.name} exited with code {self.process and self.process.returncode}")
            return self.healthy()

        wait_until(ok, timeout_s, what=f"{self.name} healthy")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Graceful stop (SIGTERM); returns the exit code."""
        if not self.running():
            return self.process.returncode if self.process else None
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"{self.name} did not stop within {timeout_s}s of SIGTERM") from None

    def kill(self) -> None:
        """SIGKILL: no chance to flush or hand over anything."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def height(self) -> int:
        return int(self.rpc.chain_height())

    def tip(self) -> tuple[int, str]:
        h = self.height()
        if h == 0:
            return 0, ""
        return h, self.rpc.chain_getBlockByNumber(number=h - 1)["hash"]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.spec.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class CityTest:
    """Base class of functional tests: override set_test_params and run_test."""

    __test__ = False

    num_orgs = 3
    nodes_per_org = 1
    seed = 1

    def set_test_params(self) -> None:
        """Override to change num_orgs, nodes_per_org or seed."""

    def run_test(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def main(self, tmp_path: Path) -> None:
        self.set_test_params()
        self.rng = random.Random(self.seed)
        self.dir = tmp_path / "net"
        self.base_port = free_base_port(self.num_orgs * self.nodes_per_org + 2, self.rng)
        log.info("network dir %s, base port %d, seed %d", self.dir, self.base_port, self.seed)
        init_network(self.dir, orgs=self.num_orgs, nodes_per_org=self.nodes_per_org, base_port=self.base_port)
        self.channel, specs = load_network(self.dir)
        self.nodes = [TestNode(s, self.dir) for s in specs]
        ok = False
        try:
            self.setup_network()
            self.run_test()
            ok = True
        finally:
            self.teardown(ok)

    def setup_network(self) -> None:
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_healthy()
        self.wait_for_leader()

    def teardown(self, ok: bool) -> None:
        for n in self.nodes:
            try:
                n.stop(timeout_s=20)
            except AssertionError as exc:
                log.error("%s", exc)
                ok = False
        if not ok:
            keep = Path(os.environ.get("SECPRIVNODE_KEEP_DIR", "/tmp")) / f"secprivnode-failed-{os.getpid()}"
            shutil.copytree(self.dir, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("LOCK"))
            log.error("test failed: network directory kept at %s (seed %d)", keep, self.seed)
            for n in self.nodes:
                log.error("---- %s log tail ----\n%s", n.name, n.log_tail())

    # -- helpers in protocol terms -------------------------------------------------------------

    def leader(self, among: list[TestNode] | None = None) -> TestNode:
        """The node every running node names as Raft leader."""

        def agreed() -> TestNode | None:
            names = set()
            for n in among or self.nodes:
                if n.running():
                    names.add(n.rpc.raft_status().get("leader"))
            if len(names) == 1 and None not in names:
                (name,) = names
                return next((n for n in self.nodes if n.name == name and n.running()), None)
            return None

        return wait_until(agreed, 60, what="agreement on a Raft leader")  # type: ignore[no-any-return]

    def wait_for_leader(self) -> TestNode:
        return self.leader()

    def sync_blocks(self, nodes: list[TestNode] | None = None, timeout_s: float = 60.0) -> tuple[int, str]:
        """Wait until every given (running) node has the same tip; return it."""
        nodes = [n for n in (nodes or self.nodes) if n.running()]

        def same() -> tuple[int, str] | None:
            tips = {n.tip() for n in nodes}
            return tips.pop() if len(tips) == 1 else None

        return wait_until(same, timeout_s, what="equal tips on " + ", ".join(n.name for n in nodes))  # type: ignore[no-any-return]

    def identity_paths(self, org: str, user: str = "client1") -> tuple[Path, Path]:
        d = self.dir / "crypto" / org / "users" / user
        return d / "cert.pem", d / "key.pem"

    def rpc_call(self, node: TestNode, method: str, params: Any = None) -> Any:
        return rpc_call(node.url, method, params)
