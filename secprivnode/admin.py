"""Channel administration for a local network directory: admit a node, remove (and revoke) one.

Both are channel configuration updates: the next :class:`~storage.model.ChannelConfig`, approved
by the channel's admins (each signs :func:`~storage.model.config_update_digest`; the network
directory holds every org's admin identity, so all of them sign and the admin policy —
``MAJORITY(admin)`` by default — is met), submitted to any running node with ``config_update``.

Admitting a node (Fabric's "join a peer to a channel"):

1. the org's CA issues the node certificate (``secprivnode ca issue`` does the same by hand);
2. a config update adds the node to the channel — as a peer, and with ``orderer=True`` also as
   an orderer: the Raft leader then adds it as a learner and promotes it once it has caught up;
3. the new node starts with only its identity, the genesis block and a seed peer; it catches up
   by state transfer and then serves queries and endorsements.

Removing a node drops it from the channel configuration and, with ``revoke``, revokes its
certificate and publishes the CRL in the same update, so every node's transport refuses it; then
the node leaves ``network.yaml`` and, when it runs here, its process is stopped. A removed node
that keeps running (another host) learns of its removal from the block that removes it, reports
it in ``/healthz`` and refuses transactions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from crypto.ca import CertificateAuthority, Role, write_identity
from crypto.encoding import decode
from secprivnode.client import AsyncClient, Client, ClientIdentity
from secprivnode.network import (
    NETWORK_FILE,
    NetworkError,
    NetworkNode,
    genesis_path,
    load_network,
    node_config_doc,
    node_healthy,
    stop_node,
)
from storage.model import ChannelConfig, ChannelNode, CollectionConfig, ContractDefinition, OrgConfig

__all__ = [
    "admin_identities",
    "admit_node",
    "current_config",
    "define_collection",
    "define_contract",
    "remove_node",
    "revoke_user",
    "running_config",
]


def admin_identities(directory: Path, orgs: list[str]) -> list[ClientIdentity]:
    out = []
    for org in orgs:
        d = directory / "crypto" / org / "users" / "admin"
        if (d / "cert.pem").exists():
            out.append(ClientIdentity.load(d / "cert.pem", d / "key.pem"))
    if not out:
        raise NetworkError(f"no admin identities under {directory / 'crypto'}")
    return out


def current_config(client: Client) -> ChannelConfig:
    got = client.call("config_get", {})
    raw = got["config"]["encoded"]
    return ChannelConfig.from_obj(decode(bytes.fromhex(raw.removeprefix("0x"))))


def _propose(directory: Path, seed: NetworkNode, cfg: ChannelConfig) -> None:
    """Submit ``cfg`` approved by every admin in the network directory; raise unless it commits VALID."""
    admins = admin_identities(directory, [o.name for o in cfg.orgs])

    async def go() -> dict[str, object]:
        async with AsyncClient(seed.rpc_url, tls=seed.client_tls()) as client:
            return await client.config_update(cfg, admins)

    result = asyncio.run(go())
    if result.get("code") != "VALID":
        raise NetworkError(f"the configuration update was not accepted: {result.get('code')}")


def running_config(nodes: list[NetworkNode]) -> tuple[NetworkNode, ChannelConfig]:
    """A running node to submit to, and the channel configuration it reports."""
    seed = _first_running(nodes)
    with Client(seed.rpc_url, tls=seed.client_tls()) as client:
        return seed, current_config(client)


def _first_running(nodes: list[NetworkNode]) -> NetworkNode:
    for n in nodes:
        if node_healthy(n):
            return n
    raise NetworkError("no running node to submit the configuration update to (run `network up` first)")


def admit_node(directory: Path, org: str, *, orderer: bool = False, name: str | None = None) -> NetworkNode:
    """Issue a node certificate, admit the node to the channel, and write its configuration."""
    channel, nodes = load_network(directory)
    ca_dir = directory / "crypto" / org / "ca"
    if not ca_dir.exists():
        raise NetworkError(f"no CA for org {org!r} in {directory / 'crypto'}")
    # A removed node's name and directory stay taken: its certificate is revoked and its
    # directory holds its old ledger and Raft log.
    taken = {n.name for n in nodes} | {p.name for p in (directory / "nodes").glob("*")}
    if name is None:
        k = 1
        while f"{org}-node{k}" in taken:
            k += 1
        name = f"{org}-node{k}"
    elif name in taken:
        raise NetworkError(f"a node named {name!r} already exists (or existed) in {directory}")
    base = int(nodes[0].p2p.rsplit(":", 1)[1])
    host = nodes[0].p2p.rsplit(":", 1)[0]
    # The next port offset after every node listed (removed nodes leave gaps that are not reused).
    i = max(int(n.p2p.rsplit(":", 1)[1]) - base for n in nodes) + 1
    new = NetworkNode(
        name=name,
        org=org,
        p2p=f"{host}:{base + i}",
        rpc=f"{host}:{base + 1000 + i}",
        ops=f"{host}:{base + 2000 + i}",
        config=directory / "nodes" / name / "node.yaml",
        roles=("orderer", "endorser", "committer", "gateway") if orderer else ("endorser", "committer", "gateway"),
        ca_bundle=nodes[0].ca_bundle,
    )
    now = int(time.time())
    ca = CertificateAuthority.load(ca_dir)
    key, cert_pem = ca.issue(name, Role.NODE, now=now, hosts=["localhost"], ips=[host])
    node_crypto = directory / "crypto" / org / "nodes" / name
    write_identity(node_crypto, key, cert_pem)

    seed, cfg = running_config(nodes)
    nodes_after = (*cfg.nodes, ChannelNode(name, org, new.p2p, orderer))
    _propose(directory, seed, dataclasses.replace(cfg, sequence=cfg.sequence + 1, nodes=nodes_after))

    new.dir.mkdir(parents=True, exist_ok=True)
    doc = node_config_doc(new, node_crypto, channel, genesis_path(directory, channel), [f"{seed.name}@{seed.p2p}"])
    new.config.write_text(yaml.safe_dump(doc, sort_keys=False))
    manifest = yaml.safe_load((directory / NETWORK_FILE).read_text())
    manifest["nodes"].append(
        {"name": name, "org": org, "p2p": new.p2p, "rpc": new.rpc, "ops": new.ops, "roles": list(new.roles)}
    )
    (directory / NETWORK_FILE).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return new


def _revoke(directory: Path, cfg: ChannelConfig, org: str, cert_path: Path) -> tuple[OrgConfig, ...]:
    """Revoke the certificate at ``cert_path`` with ``org``'s CA; the channel's orgs with the new CRL."""
    ca_dir = directory / "crypto" / org / "ca"
    ca = CertificateAuthority.load(ca_dir)
    _, crl_pem = ca.revoke_certificate(cert_path.read_bytes(), now=int(time.time()))
    ca.save(ca_dir)
    crl = x509.load_pem_x509_crl(crl_pem).public_bytes(Encoding.DER)
    # The CA's CRL lists everything it ever revoked, so it replaces the org's previous one.
    return tuple(OrgConfig(o.name, o.ca_cert, (crl,)) if o.name == org else o for o in cfg.orgs)


def remove_node(directory: Path, name: str, *, revoke: bool = True, stop: bool = True) -> ChannelConfig:
    """Remove ``name`` from the channel; with ``revoke``, revoke its certificate in the same update.

    Then take it out of ``network.yaml`` (so `network up`, `status` and `down` no longer know it;
    its directory under ``nodes/`` stays, with its ledger and log) and, with ``stop``, stop its
    process if it runs on this machine."""
    _, nodes = load_network(directory)
    seed, cfg = running_config([n for n in nodes if n.name != name])
    target = cfg.node(name)
    if target is None:
        raise NetworkError(f"{name} is not a node of channel {cfg.channel}")
    orgs = cfg.orgs
    if revoke:
        orgs = _revoke(directory, cfg, target.org, directory / "crypto" / target.org / "nodes" / name / "cert.pem")
    nodes_after = tuple(n for n in cfg.nodes if n.name != name)
    updated = dataclasses.replace(cfg, sequence=cfg.sequence + 1, orgs=orgs, nodes=nodes_after)
    _propose(directory, seed, updated)
    _forget_node(directory, name)
    local = next((n for n in nodes if n.name == name), None)
    if stop and local is not None:
        stop_node(local)
    return updated


def revoke_user(directory: Path, org: str, user: str) -> ChannelConfig:
    """Revoke the user identity ``org/user`` and publish the CRL to the channel: from the block that
    commits it, every node refuses the identity in proposals and signed reads."""
    _, nodes = load_network(directory)
    seed, cfg = running_config(nodes)
    cert_path = directory / "crypto" / org / "users" / user / "cert.pem"
    if cfg.org(org) is None:
        raise NetworkError(f"{org} is not an organisation of channel {cfg.channel}")
    if not cert_path.exists():
        raise NetworkError(f"no identity {org}/{user} in {directory / 'crypto'}")
    updated = dataclasses.replace(cfg, sequence=cfg.sequence + 1, orgs=_revoke(directory, cfg, org, cert_path))
    _propose(directory, seed, updated)
    return updated


def _forget_node(directory: Path, name: str) -> None:
    manifest = yaml.safe_load((directory / NETWORK_FILE).read_text())
    manifest["nodes"] = [d for d in manifest["nodes"] if d["name"] != name]
    (directory / NETWORK_FILE).write_text(yaml.safe_dump(manifest, sort_keys=False))


def define_contract(directory: Path, name: str, version: str, policy: str) -> ChannelConfig:
    """Define (or redefine) contract ``name`` on the channel with its endorsement policy; a packaged
    contract keeps its package and gets the next definition sequence."""
    _, nodes = load_network(directory)
    seed, cfg = running_config(nodes)
    definition = ContractDefinition(name, version, policy)
    old = cfg.contract(name)
    if old is not None and old.package_hash:  # packaged code: only the policy changes here
        if version != old.version:
            raise NetworkError(
                f"contract {name} {old.version} is packaged: a new version is a new package "
                "(secprivnode contract package, approve, commit)"
            )
        changed = policy != old.policy
        definition = dataclasses.replace(old, policy=policy, sequence=old.sequence + int(changed))
    contracts = (*(c for c in cfg.contracts if c.name != name), definition)
    updated = dataclasses.replace(cfg, sequence=cfg.sequence + 1, contracts=contracts)
    _propose(directory, seed, updated)
    return updated


def define_collection(directory: Path, collection: CollectionConfig) -> ChannelConfig:
    """Define (or redefine) a private collection of a contract: a config update."""
    _, nodes = load_network(directory)
    seed, cfg = running_config(nodes)
    others = tuple(c for c in cfg.collections if (c.contract, c.name) != (collection.contract, collection.name))
    updated = dataclasses.replace(cfg, sequence=cfg.sequence + 1, collections=(*others, collection))
    _propose(directory, seed, updated)
    return updated
