"""Helpers shared by the pipeline tests: a throwaway PKI and a tiny in-memory committed state.

Imported by module name (``conftest.py`` puts this directory on ``sys.path``; pytest runs with
``--import-mode=importlib``, which does not).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from crypto.ca import CertificateAuthority, Role
from crypto.msp import Identity
from crypto.signing import PrivateKey
from secprivnode.contracts.stub import Caller
from storage.model import OrgConfig, Version

NOW = 1_700_000_000  # unix seconds: the tests' fixed "now"; certificates are valid from here on
ORGS = ("council", "transport", "health")


@dataclass(frozen=True)
class Member:
    identity: Identity
    key: PrivateKey

    @property
    def cert(self) -> bytes:
        return self.identity.cert_der

    @property
    def caller(self) -> Caller:
        i = self.identity
        return Caller(i.org, i.role.value, i.name, i.cert_der)


@dataclass
class Pki:
    cas: dict[str, CertificateAuthority]
    members: dict[str, Member] = field(default_factory=dict)

    def issue(self, org: str, name: str, role: Role) -> Member:
        key, pem = self.cas[org].issue(name, role, now=NOW)
        m = Member(Identity.from_cert(pem), key)
        self.members[f"{org}/{name}"] = m
        return m

    def __getitem__(self, ident: str) -> Member:
        return self.members[ident]

    def org_configs(self, crls: dict[str, bytes] | None = None) -> tuple[OrgConfig, ...]:
        crls = crls or {}
        return tuple(OrgConfig(o, ca.cert_der, (crls[o],) if o in crls else ()) for o, ca in self.cas.items())


def make_pki() -> Pki:
    """Three orgs, each with two nodes, an admin and a client; plus an outsider org's CA."""
    p = Pki({o: CertificateAuthority.create(o, now=NOW - 10) for o in ORGS})
    for o in ORGS:
        p.issue(o, f"{o}-node1", Role.NODE)
        p.issue(o, f"{o}-node2", Role.NODE)
        p.issue(o, "admin", Role.ADMIN)
        p.issue(o, "alice", Role.CLIENT)
    p.issue("council", "mallory", Role.CLIENT)  # revoked by the tests that need it
    outsider = CertificateAuthority.create("outsider", now=NOW - 10)
    key, pem = outsider.issue("eve", Role.CLIENT, now=NOW)
    p.members["outsider/eve"] = Member(Identity.from_cert(pem), key)
    return p


class FakeState:
    """Committed state for stub tests: the three reads a contract can make, nothing else."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], tuple[bytes, Version]] = {}
        self.history: dict[tuple[str, str], list[Any]] = {}
        self.calls = 0

    def set(self, ns: str, key: str, value: bytes, version: Version) -> None:
        self.data[(ns, key)] = (value, version)
        self.history.setdefault((ns, key), []).append((version, value))

    def get_state(self, ns: str, key: str) -> tuple[bytes, Version] | None:
        self.calls += 1
        return self.data.get((ns, key))

    def get_range(self, ns: str, start: str, end: str, limit: int | None = None) -> list[tuple[str, bytes, Version]]:
        self.calls += 1
        keys = sorted(k for n, k in self.data if n == ns)
        lo = bisect.bisect_left(keys, start)
        hi = bisect.bisect_left(keys, end) if end else len(keys)
        out = [(k, *self.data[(ns, k)]) for k in keys[lo:hi]]
        return out if limit is None else out[:limit]

    def get_history(self, ns: str, key: str) -> list[Any]:
        return list(self.history.get((ns, key), []))
