"""More channels on a local city network: a channel among a subset of its organisations.

``create_channel`` writes the new channel's genesis block (its member organisations, their nodes,
the orderer nodes among them as its Raft group, the admin policy ``MAJORITY(admin)`` over its own
organisations), lists the channel in each member node's configuration, and records it in
``network.yaml``. Nodes join a channel by configuration: a member node that is running is
restarted, one at a time, so that it opens the channel's ledger and Raft group. A node of an
organisation outside the channel is not told about it; the members' gossip neither sends it the
channel's blocks nor answers its requests for them (the channel's configuration does not list it).

Like :mod:`secprivnode.network`, this runs in the operator's process and never imports the node's
internals.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from secprivnode.network import (
    NETWORK_FILE,
    NetworkError,
    NetworkNode,
    genesis_path,
    load_network,
    node_healthy,
    rpc_call,
    start_node,
    stop_node,
    wait_until,
    write_channel_genesis,
)

__all__ = ["CHANNEL_NAME", "create_channel", "list_channels", "restart_nodes"]

# Channel names go into file names, LevelDB key prefixes and log lines: lower-case letters, digits
# and '-', starting with a letter, at most 63 characters (as Fabric's channel names, without '.').
CHANNEL_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
# How long a restarted member node may take to report healthy again.
RESTART_TIMEOUT_S = 60.0


def _manifest(directory: Path) -> dict[str, Any]:
    doc = yaml.safe_load((directory / NETWORK_FILE).read_text())
    if not isinstance(doc, dict):
        raise NetworkError(f"{directory / NETWORK_FILE} is not a network manifest")
    return doc


def list_channels(directory: Path) -> list[dict[str, Any]]:
    """The network's channels: the default one first, then those ``create_channel`` added."""
    default, nodes = load_network(directory)
    doc = _manifest(directory)
    out = [{"name": default, "orgs": sorted({n.org for n in nodes}), "default": True}]
    out += [{"name": c["name"], "orgs": list(c["orgs"]), "default": False} for c in doc.get("channels", [])]
    return out


def create_channel(
    directory: Path, name: str, orgs: Sequence[str], *, restart: bool = True, now: int | None = None
) -> tuple[Path, list[NetworkNode]]:
    """Create channel ``name`` among ``orgs``; return its genesis path and its member nodes."""
    if not CHANNEL_NAME.fullmatch(name):
        raise NetworkError(
            f"channel name {name!r} must be lower-case letters, digits and '-', start with a letter, at most 63 chars"
        )
    if any(c["name"] == name for c in list_channels(directory)) or genesis_path(directory, name).exists():
        raise NetworkError(f"channel {name!r} already exists")
    _, nodes = load_network(directory)
    known = list(dict.fromkeys(n.org for n in nodes))
    wanted = list(dict.fromkeys(orgs))
    unknown = [o for o in wanted if o not in known]
    if not wanted or unknown:
        raise NetworkError(
            f"unknown organisations {unknown}; the network has {known}" if unknown else "no organisation"
        )
    members = [n for n in nodes if n.org in wanted]
    if not any("orderer" in n.roles for n in members):
        raise NetworkError(f"no node of {wanted} has the orderer role: nobody could order the channel")
    org_order = [o for o in known if o in wanted]  # the network's order, so the genesis is reproducible
    now = int(time.time()) if now is None else now
    path = write_channel_genesis(directory, name, org_order, members, now=now)
    for n in members:
        doc = yaml.safe_load(n.config.read_text())
        doc.setdefault("channels", []).append({"name": name, "genesis": os.path.relpath(path, n.dir)})
        n.config.write_text(yaml.safe_dump(doc, sort_keys=False))
    manifest = _manifest(directory)
    manifest.setdefault("channels", []).append({"name": name, "orgs": org_order})
    (directory / NETWORK_FILE).write_text(yaml.safe_dump(manifest, sort_keys=False))
    if restart:
        restart_nodes(members, name)
    return path, members


def _serving(node: NetworkNode, channel: str) -> bool:
    try:
        return channel in rpc_call(node.rpc_url, "node_status", context=node.ssl_context()).get("channels", ())
    except (NetworkError, OSError, ValueError):
        return False


def restart_nodes(nodes: Sequence[NetworkNode], channel: str) -> None:
    """Restart the running ones of ``nodes`` one at a time, each once it serves ``channel``, so
    the other channels keep their quorum; then wait until all are healthy (the new channel's Raft
    group can elect a leader only once a majority of its orderers run it)."""
    restarted = []
    for n in nodes:
        if stop_node(n):
            start_node(n)
            restarted.append(n)
            if not wait_until(lambda n=n: _serving(n, channel), RESTART_TIMEOUT_S):  # type: ignore[misc]
                raise NetworkError(f"{n.name} did not come back serving channel {channel} (see {n.log_file})")
    if not wait_until(lambda: all(node_healthy(n) for n in restarted), RESTART_TIMEOUT_S):
        sick = [n.name for n in restarted if not node_healthy(n)]
        raise NetworkError(f"{', '.join(sick)} not healthy after joining {channel} (see their node.log)")
