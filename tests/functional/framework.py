"""Functional test framework: real ``secprivnode`` processes on 127.0.0.1 with a throwaway PKI.

Modelled on Bitcoin Core's test framework: a test subclasses :class:`CityTest`, overrides
``set_test_params`` and ``run_test``, and talks to the nodes only through their public interfaces
(JSON-RPC, the client SDK, the CLI). Helpers speak in protocol terms: :meth:`CityTest.sync_blocks`
("wait until everybody has the same tip"), :meth:`CityTest.leader`, :func:`wait_until`,
:meth:`TestNode.kill`. Tests narrate with ``self.log.info``.

Tests in one module may share one network (:func:`shared_network`, for a module-scoped pytest
fixture) when each case leaves state the others do not depend on.

Ports are chosen at run time (a free block of ports below the kernel's ephemeral range is probed);
the seed and base port are logged. The network directory of a failed test is kept (copied to
``$SECPRIVNODE_KEEP_DIR`` or ``/tmp``) and every node's log tail is logged.

Run: ``.venv/bin/pytest tests/functional -m functional -o log_cli=true --log-cli-level=INFO`` to
watch the narration live; ``SECPRIVNODE_TEST_SEED=N`` replays another seed.

This module never imports the node's internals: only the network layout helpers, the client SDK
and the PKI, as an operator or a client would.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from secprivnode.client import Client, ClientIdentity, RpcError, TransportError
from secprivnode.network import NetworkError, NetworkNode, init_network, load_network, node_healthy, spawn_node

log = logging.getLogger("functional")
# pytest captures records at the logger's level: narration is INFO, so let it through.
log.setLevel(logging.INFO)

__all__ = [
    "CityTest",
    "RpcFailure",
    "TestNode",
    "free_base_port",
    "http_post",
    "pid_alive",
    "raw_rpc",
    "shared_network",
    "wait_until",
]

# Default seconds to wait for a condition. Generous: CI runs these on a loaded 2-core machine.
WAIT_TIMEOUT_S = 60.0
# Seconds a node may take to answer /healthz after start (interpreter start, LevelDB open, dial).
START_TIMEOUT_S = 90.0
# Seconds a node may take to exit after SIGTERM (the node's own shutdown budget is 20 s).
STOP_TIMEOUT_S = 30.0
# Ports tried by free_base_port; the bases stay clear of Linux's ephemeral range (32768-60999) so
# an outgoing connection cannot take one of them between the probe and the node's bind.
PORT_BASE_MIN = 15000
PORT_BASE_MAX = 29000
PORT_PROBES_MAX = 200
# Networks tried when a node cannot bind its probed port (taken by another process meanwhile).
START_ATTEMPTS = 3


class RpcFailure(AssertionError):
    """A JSON-RPC call returned an error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


# Errors a predicate may raise while the condition it polls is not yet true (a node still starting,
# a leader not yet elected, a block not yet gossiped).
_TRANSIENT = (OSError, RpcFailure, NetworkError, ValueError, RpcError, TransportError)


def wait_until(predicate: Callable[[], Any], timeout_s: float = WAIT_TIMEOUT_S, *, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned); fail the test after ``timeout_s``.

    Transient errors (connection refused, an RPC error while a node starts) count as "not yet".
    """
    deadline = time.monotonic() + timeout_s
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except _TRANSIENT as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    raise AssertionError(
        f"timed out after {timeout_s}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else "")
    )


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process. A zombie counts as gone: a node started by a CLI process
    that has exited is reaped by whoever adopted it, maybe later than it exits."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


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
    for _ in range(PORT_PROBES_MAX):
        base = rng.randrange(PORT_BASE_MIN, PORT_BASE_MAX)
        ports = [base + off + i for off in (0, 1000, 2000) for i in range(count)]
        if _ports_free(ports):
            return base
    raise RuntimeError("no free port range found")


def http_post(
    url: str, body: bytes, *, timeout_s: float = 30.0, context: ssl.SSLContext | None = None
) -> tuple[int, bytes]:
    """POST raw bytes as ``application/json``; return (HTTP status, body). No JSON-RPC framing."""
    u = urlsplit(url)
    host = u.hostname or "127.0.0.1"
    conn: http.client.HTTPConnection
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(host, u.port, timeout=timeout_s, context=context)
    else:
        conn = http.client.HTTPConnection(host, u.port, timeout=timeout_s)
    try:
        conn.request("POST", u.path or "/", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def raw_rpc(url: str, method: str, params: Any, timeout_s: float = 30.0, context: ssl.SSLContext | None = None) -> Any:
    """One JSON-RPC call; raise :class:`RpcFailure` with the node's code on an error object."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s, context=context) as resp:
            reply = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 413/503 still carry a JSON-RPC error object
        reply = json.loads(exc.read())
    if "error" in reply:
        e = reply["error"]
        raise RpcFailure(e["code"], e["message"], e.get("data"))
    return reply["result"]


class _RpcProxy:
    """``node.rpc.chain_height()`` → a JSON-RPC call; positional args by position, keywords by name."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        self._url = url
        self._context = context

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            assert not (args and kwargs), "JSON-RPC params are by position or by name, not both"
            return raw_rpc(self._url, method, list(args) if args else kwargs, context=self._context)

        return call


class TestNode:
    """One node process, an RPC proxy to it, and helpers to read its state."""

    __test__ = False  # not a pytest test class

    def __init__(self, spec: NetworkNode, net_dir: Path) -> None:
        self.spec = spec
        self.name = spec.name
        self.org = spec.org
        self.net_dir = net_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.ssl_context = spec.ssl_context()  # None unless the network serves RPC over TLS
        self.rpc = _RpcProxy(spec.rpc_url, self.ssl_context)
        self.exec_prefix: list[str] = []  # e.g. ``ip netns exec NS``: the node runs under it

    def __repr__(self) -> str:
        return f"<TestNode {self.name}>"

    @property
    def url(self) -> str:
        return self.spec.rpc_url

    def start(self) -> None:
        assert not self.running(), f"{self.name} already running"
        self.process = spawn_node(self.spec, prefix=self.exec_prefix)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        return node_healthy(self.spec, timeout_s=5.0)

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        def ok() -> bool:
            if not self.running():
                code = self.process.returncode if self.process else None
                raise AssertionError(f"{self.name} exited with code {code}:\n{self.log_tail()}")
            return self.healthy()

        wait_until(ok, timeout_s, what=f"{self.name} healthy")

    def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Wait for the process to exit on its own; return its exit code."""
        assert self.process is not None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout_s}s") from None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Graceful stop (SIGTERM); returns the exit code (SIGKILL and fail after ``timeout_s``)."""
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

    # -- reading the node --------------------------------------------------------------------

    def height(self) -> int:
        return int(self.rpc.chain_height())

    def tip(self) -> tuple[int, str]:
        h = self.height()
        return h, self.rpc.chain_getBlockByNumber(number=h - 1)["hash"]

    def block_hashes(self, upto: int) -> list[str]:
        """Hashes of blocks 0..upto-1 (one JSON-RPC batch)."""
        batch = [
            {"jsonrpc": "2.0", "id": i, "method": "chain_getBlockByNumber", "params": {"number": i}}
            for i in range(upto)
        ]
        out: list[str] = []
        for start in range(0, upto, 100):  # the node's batch limit is 100 calls
            status, body = http_post(
                self.url, json.dumps(batch[start : start + 100]).encode(), context=self.ssl_context
            )
            assert status == 200, f"{self.name}: HTTP {status}"
            replies = sorted(json.loads(body), key=lambda r: r["id"])
            for r in replies:
                assert "result" in r, f"{self.name}: block {r['id']}: {r.get('error')}"
                out.append(r["result"]["hash"])
        return out

    def ops_get(self, path: str) -> tuple[int, str]:
        try:
            url = self.spec.ops_url + path.lstrip("/")
            with urllib.request.urlopen(url, timeout=10.0, context=self.ssl_context) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def client(self, identity: ClientIdentity | None = None, *, timeout_s: float = 60.0) -> Client:
        """A synchronous SDK client of this node (close it, or use it in ``with``); over TLS it
        verifies the node against the network's CA bundle and presents ``identity`` if asked to."""
        tls = self.spec.client_tls()
        return Client(self.url, identity, timeout_s=timeout_s, tls=tls.with_identity(identity) if tls else None)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.spec.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class CityTest:
    """Base class of functional tests: override ``set_test_params`` and ``run_test``."""

    __test__ = False

    num_orgs = 3
    nodes_per_org = 1
    rpc_tls = False  # serve JSON-RPC and operations over HTTPS/WSS (network init --rpc-tls)
    seed = int(os.environ.get("SECPRIVNODE_TEST_SEED", "1"))

    def __init__(self) -> None:
        self.log = log.getChild(type(self).__name__)
        self.nodes: list[TestNode] = []

    def set_test_params(self) -> None:
        """Override to change num_orgs, nodes_per_org or seed."""

    def run_test(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def main(self, tmp_path: Path) -> None:
        """Set up the network, run the test, tear down (keeping the directory on failure)."""
        self.setup(tmp_path)
        ok = False
        try:
            self.run_test()
            ok = True
        finally:
            self.teardown(ok)

    def setup(self, tmp_path: Path) -> None:
        """Create the network and start every node.

        Ports are probed, not reserved: another process may bind one before a node does. A start
        that fails for that reason is retried on a fresh network with other ports.
        """
        self.set_test_params()
        self.rng = random.Random(self.seed)
        # Ports need not be replayable (they are logged), and must differ between concurrent runs.
        port_rng = random.Random(f"{os.getpid()}-{time.time_ns()}")
        for attempt in range(1, START_ATTEMPTS + 1):
            self.dir = tmp_path / f"net{attempt}"
            self.base_port = free_base_port(self.num_orgs * self.nodes_per_org, port_rng)
            self.log.info("network dir %s, base port %d, seed %d", self.dir, self.base_port, self.seed)
            init_network(
                self.dir,
                orgs=self.num_orgs,
                nodes_per_org=self.nodes_per_org,
                base_port=self.base_port,
                rpc_tls=self.rpc_tls,
            )
            self.channel, specs = load_network(self.dir)
            self.nodes = [TestNode(s, self.dir) for s in specs]
            try:
                self.start_nodes()
                return
            except AssertionError:
                lost_port = any("cannot listen" in n.log_tail() for n in self.nodes)
                if not lost_port or attempt == START_ATTEMPTS:
                    self.teardown(False)
                    raise
                self.log.warning("a port was taken before a node could bind it; new network, new ports")
                self.teardown(True)
            except BaseException:
                self.teardown(False)
                raise

    def start_nodes(self, nodes: list[TestNode] | None = None) -> None:
        for n in nodes or self.nodes:
            n.start()
        for n in nodes or self.nodes:
            n.wait_healthy()
        leader = self.leader()
        self.log.info("nodes up: %s; Raft leader %s", ", ".join(n.name for n in self.nodes), leader.name)

    def teardown(self, ok: bool) -> None:
        for n in self.nodes:
            try:
                code = n.stop()
                if code not in (0, None, -signal.SIGKILL):
                    self.log.warning("%s exited with code %s", n.name, code)
            except AssertionError as exc:
                self.log.error("%s", exc)
                ok = False
        if not ok:
            keep = Path(os.environ.get("SECPRIVNODE_KEEP_DIR", "/tmp")) / f"secprivnode-failed-{os.getpid()}"
            keep = keep / f"{type(self).__name__}-{int(time.time())}"
            shutil.copytree(self.dir, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("LOCK"))
            self.log.error("test failed: network directory kept at %s (seed %d)", keep, self.seed)
            for n in self.nodes:
                self.log.error("---- %s log tail ----\n%s", n.name, n.log_tail())

    # -- helpers in protocol terms -------------------------------------------------------------

    def leader(self, among: list[TestNode] | None = None, timeout_s: float = WAIT_TIMEOUT_S) -> TestNode:
        """The running node that every running node (of ``among``) names as Raft leader."""

        def agreed() -> TestNode | None:
            names = set()
            for n in among or self.nodes:
                if n.running():
                    names.add(n.rpc.raft_status().get("leader"))
            if len(names) == 1 and None not in names:
                (name,) = names
                return next((n for n in self.nodes if n.name == name and n.running()), None)
            return None

        return wait_until(agreed, timeout_s, what="agreement on a Raft leader")

    def sync_blocks(self, nodes: list[TestNode] | None = None, timeout_s: float = WAIT_TIMEOUT_S) -> tuple[int, str]:
        """Wait until every given (running) node has the same tip; return (height, tip hash)."""
        nodes = [n for n in (nodes or self.nodes) if n.running()]

        def same() -> tuple[int, str] | None:
            tips = {n.tip() for n in nodes}
            return tips.pop() if len(tips) == 1 else None

        return wait_until(same, timeout_s, what="equal tips on " + ", ".join(n.name for n in nodes))

    def assert_same_chain(self, nodes: list[TestNode] | None = None) -> int:
        """Every block hash is the same on every given node (call after sync_blocks); return the height."""
        nodes = [n for n in (nodes or self.nodes) if n.running()]
        height = nodes[0].height()
        chains = {n.name: n.block_hashes(height) for n in nodes}
        first = chains[nodes[0].name]
        for name, chain in chains.items():
            assert chain == first, f"{name} has a different chain from {nodes[0].name}"
        return height

    def identity_paths(self, org: str, user: str = "client1") -> tuple[Path, Path]:
        d = self.dir / "crypto" / org / "users" / user
        return d / "cert.pem", d / "key.pem"

    def identity(self, org: str, user: str = "client1") -> ClientIdentity:
        return ClientIdentity.load(*self.identity_paths(org, user))

    def cli(self, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``secprivnode ARGS`` as an operator would; return the finished process."""
        return subprocess.run(
            [sys.executable, "-m", "secprivnode", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )


def shared_network(test: CityTest, request: Any, tmp_path_factory: Any) -> Iterator[CityTest]:
    """Body of a module-scoped fixture: one running network for every test of a module.

    The directory is kept (and the logs tailed) if any test of the module failed.
    """
    session = request.session
    failed_before = session.testsfailed
    test.setup(tmp_path_factory.mktemp(type(test).__name__))
    ok = False
    try:
        yield test
        ok = session.testsfailed == failed_before
    finally:
        test.teardown(ok)
