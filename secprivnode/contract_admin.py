"""Contract lifecycle administration for a local network directory: approve and commit packages.

Fabric's chaincode lifecycle, adapted (``docs/lifecycle.md``):

1. ``package`` builds a :class:`~secprivnode.contracts.package.ContractPackage` file;
2. ``approve`` — each organisation's admin checks the package (sandbox rules), derives the next
   channel configuration with the new definition (version, policy, package hash, next definition
   sequence) and signs :func:`~storage.model.config_update_digest` of it. Approvals collect in
   the approval file ``D/lifecycle/<name>.approval``;
3. ``commit`` submits that configuration with the approvals and the package code as one config
   update; the validators accept it only if the approvals satisfy the channel's admin policy.

Approval file: the canonical encoding of ``[1, config_obj, package code, [[admin cert DER,
signature], ...]]``. Approvals bind the exact next configuration (its sequence included), so a
configuration change committed in between makes them stale, as a definition sequence does in
Fabric; ``approve`` then starts over. This module runs in the operator's process; it never reads
private keys other than the admin identities of the network directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypto.encoding import EncodingError, decode, encode
from crypto.msp import Identity, IdentityError, Role
from crypto.signing import get_backend
from secprivnode.admin import admin_identities, running_config
from secprivnode.client import AsyncClient
from secprivnode.contracts.config_contract import admin_policy, msp_from_config
from secprivnode.contracts.lifecycle import LifecycleError, vet_update
from secprivnode.contracts.package import ContractPackage, PackageError
from secprivnode.network import NetworkError, load_network
from storage.model import ChannelConfig, ContractDefinition, MalformedError, config_update_digest

__all__ = ["APPROVAL_DIR", "Approvals", "approve", "commit", "next_config", "pending_approvals"]

APPROVAL_DIR = "lifecycle"
APPROVAL_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Approvals:
    """A proposed configuration committing one package, and the admin approvals it has so far."""

    config: ChannelConfig
    code: bytes  # the package's encoded code
    signatures: tuple[tuple[bytes, bytes], ...]  # (admin cert DER, signature over config_update_digest)

    def encode(self) -> bytes:
        return encode([APPROVAL_FORMAT, self.config.to_obj(), self.code, [list(s) for s in self.signatures]])

    @classmethod
    def decode(cls, data: bytes) -> Approvals:
        try:
            fmt, cfg, code, sigs = decode(data)
            if fmt != APPROVAL_FORMAT or type(code) is not bytes:
                raise MalformedError("unknown approval file format")
            pairs = tuple((bytes(c), bytes(s)) for c, s in sigs)
            return cls(ChannelConfig.from_obj(cfg), code, pairs)
        except (EncodingError, TypeError, ValueError) as exc:
            raise NetworkError(f"approval file is malformed: {exc}") from exc

    @property
    def package(self) -> ContractPackage:
        return ContractPackage.from_code_bytes(self.code)

    def approvers(self) -> list[str]:
        """``org/name`` of each admin whose approval verifies against the configuration's MSP."""
        return [i.id for i in self._valid_admins()]

    def _valid_admins(self) -> list[Identity]:
        msp = msp_from_config(self.config)
        digest = config_update_digest(self.config)
        out = []
        for cert, sig in self.signatures:
            try:
                ident = msp.validate(cert, now=int(time.time()), roles={Role.ADMIN})
            except IdentityError:
                continue
            if get_backend().verify(ident.public_key, sig, digest):
                out.append(ident)
        return out

    def satisfied(self, current: ChannelConfig) -> bool:
        """Whether the approvals satisfy ``current``'s admin policy (what the validators check)."""
        return admin_policy(current).evaluate(self._valid_admins())


def _approval_path(directory: Path, name: str) -> Path:
    return directory / APPROVAL_DIR / f"{name}.approval"


def next_config(current: ChannelConfig, pkg: ContractPackage) -> ChannelConfig:
    """``current`` with contract ``pkg.name`` (re)defined to run ``pkg``: the next sequence of both."""
    old = current.contract(pkg.name)
    seq = 1 if old is None else old.sequence + 1
    definition = ContractDefinition(pkg.name, pkg.version, pkg.policy, pkg.hash, seq)
    if old is None:
        contracts = (*current.contracts, definition)
    else:
        contracts = tuple(definition if c.name == pkg.name else c for c in current.contracts)
    return dataclasses.replace(current, sequence=current.sequence + 1, contracts=contracts)


def approve(directory: Path, package_file: Path, orgs: list[str] | None = None) -> tuple[Approvals, list[str]]:
    """Add approvals of ``package_file`` by the admins of ``orgs`` (default: every org whose admin
    identity the directory holds; an organisation on another host approves in its own copy of the
    approval file, which is then passed on); return the approvals and notes for the operator."""
    try:
        pkg = ContractPackage.from_file_bytes(package_file.read_bytes())
    except PackageError as exc:
        raise NetworkError(f"{package_file}: {exc}") from exc
    _, nodes = load_network(directory)
    _, current = running_config(nodes)
    proposed = next_config(current, pkg)
    try:
        vet_update(current, proposed, [pkg.code_bytes()])
    except LifecycleError as exc:
        raise NetworkError(str(exc)) from exc
    notes: list[str] = []
    path = _approval_path(directory, pkg.name)
    signatures: list[tuple[bytes, bytes]] = []
    if path.exists():
        earlier = Approvals.decode(path.read_bytes())
        if earlier.config == proposed and earlier.code == pkg.code_bytes():
            signatures = list(earlier.signatures)
        else:
            notes.append(f"earlier approvals in {path} were for another configuration or package: discarded")
    names = orgs if orgs else [o.name for o in current.orgs]
    unknown = sorted(set(names) - {o.name for o in current.orgs})
    if unknown:
        raise NetworkError(f"not organisations of channel {current.channel}: {', '.join(unknown)}")
    missing = [o for o in orgs or () if not (directory / "crypto" / o / "users" / "admin" / "cert.pem").exists()]
    if missing:
        raise NetworkError(f"no admin identity in {directory / 'crypto'} for: {', '.join(missing)}")
    digest = config_update_digest(proposed)
    have = {c for c, _ in signatures}
    for admin in admin_identities(directory, names):
        if admin.cert_der not in have:
            signatures.append((admin.cert_der, admin.sign(digest)))
    approvals = Approvals(proposed, pkg.code_bytes(), tuple(signatures))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(approvals.encode())
    return approvals, notes


def commit(directory: Path, name: str) -> tuple[Approvals, dict[str, Any]]:
    """Submit the approved definition of contract ``name``; raise unless it commits VALID."""
    path = _approval_path(directory, name)
    if not path.exists():
        raise NetworkError(f"no approvals for contract {name!r} ({path}); run `secprivnode contract approve` first")
    approvals = Approvals.decode(path.read_bytes())
    _, nodes = load_network(directory)
    seed, current = running_config(nodes)
    if approvals.config.sequence != current.sequence + 1:
        raise NetworkError(
            f"the approvals are for configuration sequence {approvals.config.sequence}, the channel is at "
            f"{current.sequence}: approve the package again"
        )
    if not approvals.satisfied(current):
        raise NetworkError(
            f"approvals by {', '.join(approvals.approvers()) or 'nobody'} do not satisfy the admin policy "
            f"{current.admin_policy}"
        )

    async def go() -> dict[str, Any]:
        async with AsyncClient(seed.rpc_url, tls=seed.client_tls()) as client:
            return await client.submit_config(approvals.config, approvals.signatures, packages=[approvals.code])

    result = asyncio.run(go())
    if result.get("code") != "VALID":
        raise NetworkError(f"the definition was not committed: {result.get('code')}")
    path.unlink()
    return approvals, result


def pending_approvals(directory: Path) -> list[Approvals]:
    """The approval files waiting for a commit, by contract name."""
    folder = directory / APPROVAL_DIR
    if not folder.is_dir():
        return []
    return [Approvals.decode(p.read_bytes()) for p in sorted(folder.glob("*.approval"))]
