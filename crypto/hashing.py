"""Domain-separated hashing: ``digest(tag, obj) = sha256(tag ‖ encode(obj))``.

Every hashed or signed structure has its own tag, so bytes that are valid as one kind of structure
can never be passed off as another (a transaction header as a block header, say). Tags are
registered once, here or by the module that owns the structure, and are prefix-free: each is
``b"secprivnode/" + name + b"\\x00"`` and names contain no NUL, so no tag is a prefix of another.

``hashlib`` is the SHA-256 hot path; the pure-Python implementation in :mod:`crypto.sha256_pure`
exists only as a benchmark baseline and test oracle.
"""

from __future__ import annotations

import hashlib
from typing import Any

from crypto.encoding import encode

__all__ = ["Tag", "digest", "digest_bytes", "register_tag", "registered_tags", "sha256"]

_TAGS: dict[str, bytes] = {}


def register_tag(name: str) -> bytes:
    """Register a domain tag and return its bytes. Registering the same name twice is a bug."""
    if not name or "\x00" in name or not name.isascii():
        raise ValueError(f"bad tag name {name!r}")
    if name in _TAGS:
        raise ValueError(f"tag {name!r} is already registered")
    tag = b"secprivnode/" + name.encode("ascii") + b"\x00"
    _TAGS[name] = tag
    return tag


def registered_tags() -> dict[str, bytes]:
    """A copy of the registry, for tests and documentation."""
    return dict(_TAGS)


class Tag:
    """The ledger's domain tags. Modules with structures of their own call :func:`register_tag`."""

    PROPOSAL_HEADER = register_tag("proposal-header/v1")  # tx id
    PROPOSAL = register_tag("proposal/v1")  # what the creator signs
    ENDORSEMENT = register_tag("endorsement/v1")  # what an endorser signs
    TRANSACTION = register_tag("transaction/v1")  # Merkle leaf content of a block
    BLOCK_HEADER = register_tag("block-header/v1")  # block hash; what the orderer signs
    CONFIG_UPDATE = register_tag("config-update/v1")  # what channel admins sign
    GOSSIP_ALIVE = register_tag("gossip-alive/v1")
    HANDSHAKE = register_tag("p2p-handshake/v1")
    BLOB = register_tag("blob/v1")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def digest_bytes(tag: bytes, data: bytes) -> bytes:
    """``sha256(tag ‖ data)`` for data that is already canonically encoded."""
    h = hashlib.sha256(tag)
    h.update(data)
    return h.digest()


def digest(tag: bytes, obj: Any) -> bytes:
    """``sha256(tag ‖ encode(obj))``."""
    return digest_bytes(tag, encode(obj))
