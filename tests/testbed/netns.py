"""Linux network namespaces on a private bridge, and the network faults between them.

One :class:`NetBed` owns, for one run:

* a bridge ``spb<run>`` in the root namespace with the subnet's first address (the control
  plane: the test process reads the nodes' RPC and health through it);
* one namespace ``spn<run>-<i>`` per host, joined to the bridge by a veth pair whose inner end is
  ``eth0`` with the host's address;
* on every ``eth0`` an HTB root qdisc with two classes: ``1:1`` (the default: everything passes;
  its leaf becomes ``netem`` for delay/loss/duplication/reordering) and ``1:2`` (a ``pfifo`` of
  length 0 that drops everything). A partition is a ``u32`` filter that sends packets for a
  blocked destination address to ``1:2``. Filters sit on the sender's egress, so ``block(a, b)``
  cuts a → b only (one-way); a symmetric partition blocks both directions.

The names embed a random run id, so parallel runs never clash, and every object created is
recorded in a state file under :data:`STATE_DIR` so that ``scripts/testbed cleanup`` can remove
what an interrupted run left behind.

This module drives ``ip`` and ``tc`` (iproute2) only; it never touches an interface, route or
namespace it did not create.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "STATE_DIR",
    "Host",
    "NetBed",
    "Netem",
    "NetnsError",
    "cleanup_leftovers",
    "netem_supported",
    "netns_unavailable_reason",
]

# Where each run records what it created (root-only, like the namespaces themselves).
STATE_DIR = Path(os.environ.get("SECPRIVNODE_TESTBED_STATE", "/run/secprivnode-testbed"))
# Prefixes of every object this module creates; ``cleanup`` only ever removes names with them.
NS_PREFIX = "spn"
BRIDGE_PREFIX = "spb"
VETH_PREFIX = "spv"
# Hex digits of the run id: 6 keeps ``spv<id><i>`` within the kernel's 15-byte interface names
# for up to 99 hosts, and makes a clash between concurrent runs a one-in-16-million event.
RUN_ID_HEX = 6
# Hosts per bed: addresses .2 to .(2+N-1) of a /24, and a two-digit veth suffix.
HOSTS_MAX = 99
# Seconds any single ip/tc command may take (they take milliseconds; a hung one is a bug).
COMMAND_TIMEOUT_S = 20.0
# Private ranges the bed picks its /24 from: 10.200.0.0/16 .. 10.239.0.0/16 (RFC 1918 space that
# real networks of a test machine rarely use; a subnet already routed on the machine is skipped).
SUBNET_FIRST_OCTET = 10
SUBNET_SECOND_OCTETS = range(200, 240)


class NetnsError(RuntimeError):
    """An ip/tc command failed, or the machine cannot host network namespaces."""


def _run(args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(args), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise NetnsError(f"{args[0]} is not installed (iproute2 provides ip and tc)") from exc
    except subprocess.TimeoutExpired as exc:
        raise NetnsError(f"{' '.join(args)} did not finish within {COMMAND_TIMEOUT_S}s") from exc
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _in_ns(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["ip", "netns", "exec", ns, *args], check=check)


def netns_unavailable_reason() -> str | None:
    """None if this process can create a network namespace and a bridge; else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (install iproute2)"
    probe = f"{NS_PREFIX}probe{secrets.token_hex(3)}"
    try:
        _run(["ip", "netns", "add", probe])
    except NetnsError as exc:
        return f"cannot create a network namespace: {exc}"
    _run(["ip", "netns", "del", probe], check=False)
    return None


_NETEM_SUPPORTED: bool | None = None


def netem_supported() -> bool:
    """Whether the kernel has the netem qdisc (probed once, in a throwaway namespace)."""
    global _NETEM_SUPPORTED
    if _NETEM_SUPPORTED is None:
        probe = f"{NS_PREFIX}netem{secrets.token_hex(3)}"
        _run(["ip", "netns", "add", probe])
        try:
            _in_ns(probe, "ip", "link", "set", "lo", "up")
            ok = _in_ns(probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False)
            _NETEM_SUPPORTED = ok.returncode == 0
        finally:
            _run(["ip", "netns", "del", probe], check=False)
    return _NETEM_SUPPORTED


@dataclass(frozen=True)
class Netem:
    """Link impairment on a host's egress (tc-netem(8) terms)."""

    delay_ms: int = 0
    jitter_ms: int = 0
    loss_pct: float = 0.0
    duplicate_pct: float = 0.0
    reorder_pct: float = 0.0

    def args(self) -> list[str]:
        out: list[str] = []
        if self.delay_ms or self.jitter_ms or self.reorder_pct:
            out += ["delay", f"{self.delay_ms}ms"]
            if self.jitter_ms:
                out += [f"{self.jitter_ms}ms", "distribution", "normal"]
        if self.loss_pct:
            out += ["loss", f"{self.loss_pct}%"]
        if self.duplicate_pct:
            out += ["duplicate", f"{self.duplicate_pct}%"]
        if self.reorder_pct:
            out += ["reorder", f"{self.reorder_pct}%"]
        return out


@dataclass(frozen=True)
class Host:
    label: str  # the node's name, or "client"
    ns: str
    addr: str
    veth: str  # host-side end, on the bridge


@dataclass
class NetBed:
    """Namespaces for ``labels`` on one bridge; :meth:`create` builds them, :meth:`destroy` removes them."""

    labels: Sequence[str]
    run_id: str = field(default_factory=lambda: secrets.token_hex(RUN_ID_HEX // 2))
    hosts: dict[str, Host] = field(default_factory=dict)
    bridge: str = ""
    gateway: str = ""  # the bridge's own address (the control plane)
    mounts: list[str] = field(default_factory=list)  # tmpfs mounts of the hosts' data (unmounted by cleanup)
    _blocked: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not 1 <= len(self.labels) <= HOSTS_MAX:
            raise NetnsError(f"a bed holds 1..{HOSTS_MAX} hosts")
        if len(set(self.labels)) != len(self.labels):
            raise NetnsError("host labels must be distinct")
        self.bridge = f"{BRIDGE_PREFIX}{self.run_id}"

    @property
    def state_file(self) -> Path:
        return STATE_DIR / f"{self.run_id}.json"

    # ------------------------------------------------------------------ lifecycle
    def _subnet(self) -> ipaddress.IPv4Network:
        routes = _run(["ip", "-4", "-o", "route", "show", "table", "all"], check=False).stdout
        used = [ipaddress.ip_network(w, strict=False) for w in routes.split() if "/" in w and w[0].isdigit()]
        start = int(self.run_id, 16)
        for k in range(len(SUBNET_SECOND_OCTETS) * 256):
            n = (start + k) % (len(SUBNET_SECOND_OCTETS) * 256)
            second, third = SUBNET_SECOND_OCTETS[n // 256], n % 256
            net = ipaddress.ip_network(f"{SUBNET_FIRST_OCTET}.{second}.{third}.0/24")
            if not any(net.overlaps(u) for u in used):
                return net
        raise NetnsError("no free private /24 left for a test bed")

    def _save_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        doc = {
            "run_id": self.run_id,
            "owner_pid": os.getpid(),
            "bridge": self.bridge,
            "namespaces": [h.ns for h in self.hosts.values()],
            "veths": [h.veth for h in self.hosts.values()],
            "mounts": self.mounts,
        }
        self.state_file.write_text(json.dumps(doc, indent=1) + "\n")

    def create(self) -> NetBed:
        net = self._subnet()
        addrs = list(net.hosts())
        self.gateway = str(addrs[0])
        self._save_state()  # before the first object exists, so cleanup always finds the run
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.gateway}/{net.prefixlen}", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        for i, label in enumerate(self.labels):
            host = Host(label, f"{NS_PREFIX}{self.run_id}-{i}", str(addrs[i + 1]), f"{VETH_PREFIX}{self.run_id}{i}")
            self.hosts[label] = host
            self._save_state()
            self._add_host(host, net.prefixlen)
        return self

    def _add_host(self, h: Host, prefixlen: int) -> None:
        peer = f"{h.veth}p"
        _run(["ip", "netns", "add", h.ns])
        _run(["ip", "link", "add", h.veth, "type", "veth", "peer", "name", peer])
        _run(["ip", "link", "set", peer, "netns", h.ns])
        _run(["ip", "link", "set", h.veth, "master", self.bridge])
        _run(["ip", "link", "set", h.veth, "up"])
        _in_ns(h.ns, "ip", "link", "set", peer, "name", "eth0")
        _in_ns(h.ns, "ip", "addr", "add", f"{h.addr}/{prefixlen}", "dev", "eth0")
        _in_ns(h.ns, "ip", "link", "set", "eth0", "up")
        _in_ns(h.ns, "ip", "link", "set", "lo", "up")
        # HTB root: 1:1 passes (default), 1:2 drops (a pfifo that holds nothing). The rate is far
        # above anything a test sends, so HTB never shapes; r2q keeps the quantum sane at it.
        tc = ("tc", "class", "add", "dev", "eth0", "parent", "1:")
        _in_ns(h.ns, "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1", "r2q", "10000")
        _in_ns(h.ns, *tc, "classid", "1:1", "htb", "rate", "10gbit")
        _in_ns(h.ns, *tc, "classid", "1:2", "htb", "rate", "10gbit")
        _in_ns(h.ns, "tc", "qdisc", "add", "dev", "eth0", "parent", "1:2", "handle", "20:", "pfifo", "limit", "0")

    def record_mount(self, path: str, *, present: bool = True) -> None:
        """Note a mount made for this bed (or its removal), so that ``cleanup`` can undo it."""
        if present and path not in self.mounts:
            self.mounts.append(path)
        elif not present and path in self.mounts:
            self.mounts.remove(path)
        self._save_state()

    def destroy(self) -> None:
        """Remove every namespace (with its veth), the bridge and the state file; idempotent."""
        _destroy(self.bridge, [h.ns for h in self.hosts.values()], [h.veth for h in self.hosts.values()])
        self.state_file.unlink(missing_ok=True)

    def exec_prefix(self, label: str) -> list[str]:
        """The command prefix that runs a program inside ``label``'s namespace."""
        return ["ip", "netns", "exec", self.hosts[label].ns]

    # ------------------------------------------------------------------ partitions
    def block(self, src: str, dst: str) -> None:
        """Drop every packet ``src`` sends to ``dst`` (one-way)."""
        if (src, dst) in self._blocked:
            return
        h = self.hosts[src]
        _in_ns(
            h.ns, "tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1",
            "u32", "match", "ip", "dst", f"{self.hosts[dst].addr}/32", "flowid", "1:2",
        )  # fmt: skip
        self._blocked.add((src, dst))

    def partition(self, *groups: Iterable[str], one_way: bool = False) -> None:
        """Split into ``groups`` (labels not named stay reachable from all); one_way: only earlier → later."""
        sets = [list(g) for g in groups]
        for i, a in enumerate(sets):
            for j, b in enumerate(sets):
                if i == j or (one_way and j < i):
                    continue
                for x in a:
                    for y in b:
                        self.block(x, y)

    def heal(self) -> None:
        """Remove every partition filter."""
        for label in {src for src, _ in self._blocked}:
            _in_ns(self.hosts[label].ns, "tc", "filter", "del", "dev", "eth0", "parent", "1:", "prio", "1")
        self._blocked.clear()

    # ------------------------------------------------------------------ link impairment
    def netem(self, label: str, spec: Netem) -> None:
        """Impair ``label``'s egress (everything it sends); raises NetnsError without kernel netem."""
        if not netem_supported():
            raise NetnsError("the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)")
        ns = self.hosts[label].ns
        _in_ns(ns, "tc", "qdisc", "replace", "dev", "eth0", "parent", "1:1", "handle", "10:", "netem", *spec.args())

    def clear_netem(self, label: str) -> None:
        _in_ns(self.hosts[label].ns, "tc", "qdisc", "del", "dev", "eth0", "parent", "1:1", check=False)

    def pids(self, label: str) -> list[int]:
        """Processes running in ``label``'s namespace."""
        out = _run(["ip", "netns", "pids", self.hosts[label].ns], check=False).stdout
        return [int(p) for p in out.split()]


def _destroy(bridge: str, namespaces: Sequence[str], veths: Sequence[str]) -> None:
    for ns in namespaces:
        pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for p in pids:
            try:
                os.kill(int(p), 9)
            except (ProcessLookupError, ValueError):
                pass
        _run(["ip", "netns", "del", ns], check=False)
    for v in veths:  # gone with their namespace's end; deleted here if a run stopped half-way
        _run(["ip", "link", "del", v], check=False)
    if bridge:
        _run(["ip", "link", "del", bridge], check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_leftovers(*, everything: bool = False) -> list[str]:
    """Remove beds whose owning process is gone (every bed with ``everything``); return their run ids.

    Also removes namespaces and bridges with this module's prefixes that no state file names
    (a run killed between creating an object and recording it).
    """
    removed: list[str] = []
    known_ns: set[str] = set()
    known_br: set[str] = set()
    states = sorted(STATE_DIR.glob("*.json")) if STATE_DIR.is_dir() else []
    for path in states:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if not everything and _alive(int(doc.get("owner_pid", 0))):
            known_ns.update(doc.get("namespaces", []))
            known_br.add(doc.get("bridge", ""))
            continue
        for mount in doc.get("mounts", []):
            _run(["umount", "-l", mount], check=False)
        _destroy(doc.get("bridge", ""), doc.get("namespaces", []), doc.get("veths", []))
        path.unlink(missing_ok=True)
        removed.append(str(doc.get("run_id", path.stem)))
    listed = _run(["ip", "netns", "list"], check=False).stdout.split("\n")
    stray_ns = [line.split()[0] for line in listed if line.startswith(NS_PREFIX) and line.split()[0] not in known_ns]
    links = _run(["ip", "-o", "link", "show", "type", "bridge"], check=False).stdout.split("\n")
    stray_br = [
        name
        for line in links
        if len(parts := line.split(":")) > 1
        and (name := parts[1].strip()).startswith(BRIDGE_PREFIX)
        and name not in known_br
    ]
    if stray_ns or stray_br:
        _destroy("", stray_ns, [])
        for br in stray_br:
            _run(["ip", "link", "del", br], check=False)
        removed.append(f"stray: {' '.join(stray_ns + stray_br)}")
    return removed
