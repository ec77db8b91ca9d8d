"""A local city network: one directory holding the PKI, the channel's genesis block, one config and
data directory per node, and the processes running them.

Layout of a network directory ``D``::

    D/network.yaml                 what `network init` made: channel, nodes, their addresses
    D/crypto/<org>/...             the PKI (see `secprivnode crypto generate --help`)
    D/channel/<channel>.block      the genesis block (canonical bytes)
    D/nodes/<node>/node.yaml       the node's configuration
    D/nodes/<node>/data/           its ledger and Raft log
    D/nodes/<node>/node.log        its log (while run by `network up`)
    D/nodes/<node>/node.pid        its process id (while running)
    D/status.json                  written by `network up`/`network status`
    D/crypto/ca-bundle.pem         every organisation's root CA: what clients verify nodes against

Ports: node ``i`` (0-based, in network.yaml order) listens for P2P on ``base_port + i``, for
JSON-RPC on ``base_port + 1000 + i`` and for operations on ``base_port + 2000 + i``. With
``rpc_tls`` both of those serve HTTPS/WSS with the node certificate (``network.yaml`` records it, so
every helper here and the CLI then speak ``https://`` and verify against ``crypto/ca-bundle.pem``).
With one host
per node (``init_network(hosts=...)``), every node uses the ports of a real deployment
(:data:`HOST_P2P_PORT`, :data:`HOST_RPC_PORT`, :data:`HOST_OPS_PORT`) on its own address, listens
for P2P on every interface and advertises its host's address, as ``configs/deployment/`` shows.

Everything here runs in the operator's process; the nodes are separate processes started with
``python -m secprivnode node run``. This module never imports the node's internals.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from crypto.ca import default_org_names, generate_network
from crypto.msp import Identity, OrgMSP
from crypto.signing import PrivateKey
from secprivnode.client_tls import ClientTLS, network_ca_pem
from secprivnode.contracts.package import ENTRY_MODULE, ContractPackage
from secprivnode.genesis import genesis_block, write_genesis
from storage.model import BatchConfig, ChannelConfig, ChannelNode, CollectionConfig, ContractDefinition, OrgConfig

__all__ = [
    "CA_BUNDLE",
    "NetworkError",
    "NetworkNode",
    "assets_package",
    "genesis_path",
    "init_network",
    "load_network",
    "network_down",
    "network_status",
    "network_up",
    "node_healthy",
    "rpc_call",
    "spawn_node",
    "start_node",
    "stop_node",
    "write_channel_genesis",
]

NETWORK_FILE = "network.yaml"
CA_BUNDLE = Path("crypto") / "ca-bundle.pem"
STATUS_FILE = "status.json"
ASSETS_VERSION = "1.0"
DEFAULT_CHANNEL = "city"
# How long `network up` waits for every node to report healthy and a Raft leader.
UP_TIMEOUT_S = 60.0
# How long `network down` waits after SIGTERM before it sends SIGKILL.
DOWN_TIMEOUT_S = 20.0
# Ports of a node that has a host to itself (configs/deployment/council-node1.yaml).
HOST_P2P_PORT = 7051
HOST_RPC_PORT = 8545
HOST_OPS_PORT = 9443


class NetworkError(RuntimeError):
    """A network directory is missing, inconsistent, or its nodes did not come up."""


@dataclass(frozen=True)
class NetworkNode:
    name: str
    org: str
    p2p: str
    rpc: str  # host:port
    ops: str  # host:port
    config: Path
    roles: tuple[str, ...]
    ca_bundle: Path | None = None  # set when the node serves RPC over TLS: the CAs to verify it with

    @property
    def tls(self) -> bool:
        return self.ca_bundle is not None

    @property
    def rpc_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.rpc}/"

    @property
    def ops_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.ops}/"

    def client_tls(self) -> ClientTLS | None:
        """What an SDK client of this node trusts (``None`` for plain HTTP)."""
        return ClientTLS(self.ca_bundle.read_text()) if self.ca_bundle is not None else None

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context for urllib calls to this node (``None`` for plain HTTP)."""
        return _ssl_context(self.ca_bundle) if self.ca_bundle is not None else None

    @property
    def dir(self) -> Path:
        return self.config.parent

    @property
    def pid_file(self) -> Path:
        return self.dir / "node.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "node.log"


@functools.lru_cache(maxsize=8)  # one per network directory a process talks to
def _ssl_context(ca_bundle: Path) -> ssl.SSLContext:
    return ClientTLS(ca_bundle.read_text()).context()


def _admin(crypto_dir: Path, org: str) -> tuple[bytes, PrivateKey]:
    user = crypto_dir / org / "users" / "admin"
    cert = Identity.from_cert((user / "cert.pem").read_bytes()).cert_der
    return cert, PrivateKey.from_pem((user / "key.pem").read_bytes())


# A collection's max peer count when none is given: more than a city network's member nodes, so
# private data is pushed to all of them.
DEFAULT_MAX_PEERS = 64


def default_collections(orgs: list[str]) -> tuple[CollectionConfig, ...]:
    """The sample contract's collections: ``shared`` between the first two organisations (the
    whole network when there is one), and ``<org>-only`` for each organisation."""
    shared = CollectionConfig("assets", "shared", tuple(orgs[:2]), 0, DEFAULT_MAX_PEERS, 0)
    return (shared, *(CollectionConfig("assets", f"{o}-only", (o,), 0, DEFAULT_MAX_PEERS, 0) for o in orgs))


def assets_package(policy: str) -> ContractPackage:
    """The sample ``assets`` contract as a package: the genesis block installs it on every node."""
    source = resources.files("secprivnode.contracts").joinpath("assets.py").read_bytes()
    return ContractPackage("assets", ASSETS_VERSION, policy, ((ENTRY_MODULE, source),))


def genesis_path(directory: Path, channel: str) -> Path:
    return directory / "channel" / f"{channel}.block"


def write_channel_genesis(
    directory: Path,
    channel: str,
    orgs: Sequence[str],
    nodes: Sequence[NetworkNode],
    *,
    batch: BatchConfig | None = None,
    now: int,
) -> Path:
    """Write the genesis block of ``channel`` for ``orgs`` and their ``nodes`` (the ones with the
    orderer role order it), signed by the first org's admin; return its path."""
    crypto_dir = directory / "crypto"
    any_org_node = "OR(" + ", ".join(f"'{o}.node'" for o in orgs) + ")"
    assets = assets_package(any_org_node)
    config = ChannelConfig(
        channel=channel,
        sequence=0,
        orgs=tuple(
            OrgConfig(o, OrgMSP.from_pem((crypto_dir / o / "ca" / "ca.pem").read_bytes()).ca_cert_der) for o in orgs
        ),
        nodes=tuple(ChannelNode(n.name, n.org, n.p2p, orderer="orderer" in n.roles) for n in nodes),
        batch=batch or BatchConfig(),
        contracts=(ContractDefinition("assets", assets.version, any_org_node, assets.hash, 1),),
        admin_policy="MAJORITY(admin)",
        collections=default_collections(list(orgs)),
    )
    admin_cert, admin_key = _admin(crypto_dir, orgs[0])
    block = genesis_block(
        config,
        admin_cert_der=admin_cert,
        admin_key=admin_key,
        timestamp_ms=now * 1000,
        packages=[assets.code_bytes()],
    )
    path = genesis_path(directory, channel)
    path.parent.mkdir(exist_ok=True)
    write_genesis(path, block)
    return path


def init_network(
    directory: Path,
    *,
    orgs: int = 3,
    nodes_per_org: int = 1,
    channel: str = DEFAULT_CHANNEL,
    base_port: int = 7051,
    host: str = "127.0.0.1",
    batch: BatchConfig | None = None,
    now: int | None = None,
    rpc_tls: bool = False,
    hosts: Sequence[str] | None = None,
    node_options: dict[str, Any] | None = None,
) -> list[NetworkNode]:
    """Create the PKI, the genesis block and one node configuration per node.

    With ``rpc_tls`` every node serves JSON-RPC and operations over HTTPS with its node certificate.
    ``hosts`` gives each node (in order) a host address of its own: the node then listens on the
    deployment ports of that address instead of ``host:base_port + i``. ``node_options`` are extra
    top-level sections merged into every node.yaml (``raft``, ``logging``...).
    """
    if (directory / NETWORK_FILE).exists():
        raise NetworkError(f"{directory} already holds a network (remove it or choose another --dir)")
    if orgs < 1 or nodes_per_org < 1:
        raise NetworkError("a network needs at least one organisation with one node")
    now = int(time.time()) if now is None else now
    directory.mkdir(parents=True, exist_ok=True)
    crypto_dir = directory / "crypto"
    names = default_org_names(orgs)
    if hosts is not None and len(hosts) != orgs * nodes_per_org:
        raise NetworkError(f"{len(hosts)} hosts given for {orgs * nodes_per_org} nodes")
    generate_network(crypto_dir, names, nodes_per_org, 2, now=now)
    (directory / CA_BUNDLE).write_text(network_ca_pem(directory))
    bundle = directory / CA_BUNDLE if rpc_tls else None

    nodes: list[NetworkNode] = []
    for i, (org, k) in enumerate((o, k) for o in names for k in range(1, nodes_per_org + 1)):
        name = f"{org}-node{k}"
        cfg = directory / "nodes" / name / "node.yaml"
        if hosts is None:
            addr, ports = host, (base_port + i, base_port + 1000 + i, base_port + 2000 + i)
        else:
            addr, ports = hosts[i], (HOST_P2P_PORT, HOST_RPC_PORT, HOST_OPS_PORT)
        p2p, rpc, ops = (f"{addr}:{p}" for p in ports)
        nodes.append(
            NetworkNode(
                name=name,
                org=org,
                p2p=p2p,
                rpc=rpc,
                ops=ops,
                config=cfg,
                roles=("orderer", "endorser", "committer", "gateway"),
                ca_bundle=bundle,
            )
        )

    genesis_path = write_channel_genesis(directory, channel, names, nodes, batch=batch, now=now)

    for n in nodes:
        n.dir.mkdir(parents=True, exist_ok=True)
        node_dir = crypto_dir / n.org / "nodes" / n.name
        doc = node_config_doc(n, node_dir, channel, genesis_path, [f"{m.name}@{m.p2p}" for m in nodes if m is not n])
        if hosts is not None:  # one host per node: listen on every interface, advertise the host
            doc["p2p"] = {**doc["p2p"], "listen": f"0.0.0.0:{HOST_P2P_PORT}", "advertise": n.p2p}
        doc.update(node_options or {})
        n.config.write_text(yaml.safe_dump(doc, sort_keys=False))

    manifest = {
        "channel": channel,
        "rpc_tls": rpc_tls,
        "nodes": [
            {"name": n.name, "org": n.org, "p2p": n.p2p, "rpc": n.rpc, "ops": n.ops, "roles": list(n.roles)}
            for n in nodes
        ],
    }
    (directory / NETWORK_FILE).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return nodes


def node_config_doc(
    n: NetworkNode, node_crypto: Path, channel: str, genesis: Path, bootstrap: list[str]
) -> dict[str, Any]:
    """The ``node.yaml`` of a local network's node (paths relative to its directory)."""
    rpc: dict[str, Any] = {"listen": n.rpc, "operations_listen": n.ops}
    if n.tls:
        rpc["tls"] = {"enabled": True}  # the node certificate: SANs localhost and the host's IP
    return {
        "node": {"name": n.name, "org": n.org, "data_dir": "data", "roles": list(n.roles)},
        "identity": {
            "cert": os.path.relpath(node_crypto / "cert.pem", n.dir),
            "key": os.path.relpath(node_crypto / "key.pem", n.dir),
        },
        "channels": [{"name": channel, "genesis": os.path.relpath(genesis, n.dir)}],
        "p2p": {"listen": n.p2p, "bootstrap": bootstrap, "network_id": f"secprivnode-{channel}"},
        "rpc": rpc,
    }


def load_network(directory: Path) -> tuple[str, list[NetworkNode]]:
    """The channel and nodes of the network in ``directory``."""
    path = directory / NETWORK_FILE
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise NetworkError(f"no network in {directory} (run `secprivnode network init --dir {directory}`)") from exc
    nodes = [
        NetworkNode(
            name=d["name"],
            org=d["org"],
            p2p=d["p2p"],
            rpc=d["rpc"],
            ops=d["ops"],
            config=directory / "nodes" / d["name"] / "node.yaml",
            roles=tuple(d.get("roles", ())),
            ca_bundle=directory / CA_BUNDLE if doc.get("rpc_tls") else None,
        )
        for d in doc["nodes"]
    ]
    return doc["channel"], nodes


def rpc_call(
    url: str, method: str, params: Any = None, *, timeout_s: float = 5.0, context: ssl.SSLContext | None = None
) -> Any:
    """One JSON-RPC call over HTTP(S); raises NetworkError with the server's message on error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s, context=context) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        err = reply["error"]
        raise NetworkError(f"{method}: {err.get('message')} (code {err.get('code')})")
    return reply["result"]


def _pid(node: NetworkNode) -> int | None:
    try:
        pid = int(node.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        # Reap it if it is our own exited child (tests start nodes from the same process).
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return None
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def node_healthy(node: NetworkNode, *, timeout_s: float = 2.0) -> bool:
    """Whether the node's operations endpoint answers /healthz with 200."""
    try:
        with urllib.request.urlopen(node.ops_url + "healthz", timeout=timeout_s, context=node.ssl_context()) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def spawn_node(node: NetworkNode, *, python: str | None = None, prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start one node process (output appended to its node.log) and record its pid.

    ``prefix`` is a command the node runs under (``ip netns exec NS`` for a node in a network
    namespace); the recorded pid is then that of the prefix, which execs the node in place.
    """
    log = open(node.log_file, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen(
            [
                *prefix,
                python or sys.executable,
                *("-m", "secprivnode", "node", "run", "--config", str(node.config.resolve())),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=node.dir.resolve(),
        )
    finally:
        log.close()
    node.pid_file.write_text(f"{proc.pid}\n")
    return proc


def start_node(node: NetworkNode, *, python: str | None = None) -> int:
    """Start the node unless it is already running; return its pid."""
    existing = _pid(node)
    if existing is not None:
        return existing
    return spawn_node(node, python=python).pid


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def _leader(nodes: Sequence[NetworkNode]) -> str | None:
    for n in nodes:
        try:
            status = rpc_call(n.rpc_url, "raft_status", timeout_s=2.0, context=n.ssl_context())
        except (NetworkError, urllib.error.URLError, OSError, ValueError):
            continue
        if status.get("leader"):
            return str(status["leader"])
    return None


def network_up(directory: Path, *, timeout_s: float = UP_TIMEOUT_S) -> dict[str, Any]:
    """Start every node that is not running; return once all are healthy and a leader is known."""
    _, nodes = load_network(directory)
    for n in nodes:
        start_node(n)

    def all_healthy() -> bool:
        dead = [n for n in nodes if _pid(n) is None]
        if dead:
            tail = "\n".join(dead[0].log_file.read_text(errors="replace").splitlines()[-5:])
            raise NetworkError(f"{', '.join(n.name for n in dead)} exited during start-up; {dead[0].log_file}:\n{tail}")
        return all(node_healthy(n) for n in nodes)

    if not wait_until(all_healthy, timeout_s):
        sick = [n.name for n in nodes if not node_healthy(n)]
        raise NetworkError(f"nodes not healthy after {timeout_s:.0f}s: {', '.join(sick)} (see their node.log)")
    if not wait_until(lambda: _leader(nodes) is not None, timeout_s):
        raise NetworkError(f"no Raft leader after {timeout_s:.0f}s (see the nodes' node.log)")
    return network_status(directory)


def network_status(directory: Path) -> dict[str, Any]:
    """Status of every node (name, rpc, pid, roles, healthy) and the Raft leader; also saved to status.json."""
    channel, nodes = load_network(directory)
    status = {
        "channel": channel,
        "leader": _leader(nodes),
        "nodes": [
            {
                "name": n.name,
                "org": n.org,
                "rpc": n.rpc_url,
                "ops": n.ops_url,
                "p2p": n.p2p,
                "pid": _pid(n),
                "roles": list(n.roles),
                "healthy": node_healthy(n),
            }
            for n in nodes
        ],
    }
    (directory / STATUS_FILE).write_text(json.dumps(status, indent=2) + "\n")
    return status


def stop_node(node: NetworkNode, *, timeout_s: float = DOWN_TIMEOUT_S) -> bool:
    """SIGTERM the node, SIGKILL it after ``timeout_s``; True if it was running."""
    pid = _pid(node)
    if pid is None:
        node.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: _pid(node) is None, timeout_s, 0.1):
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _pid(node) is None, 5.0, 0.1)
    node.pid_file.unlink(missing_ok=True)
    return True


def network_down(directory: Path) -> list[str]:
    """Stop every running node gracefully; return the names of those that were running."""
    _, nodes = load_network(directory)
    return [n.name for n in nodes if stop_node(n)]
