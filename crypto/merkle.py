"""Merkle tree hash and audit paths of RFC 6962 §2.1 (Certificate Transparency).

* ``MTH({}) = SHA-256()``, ``MTH({d0}) = SHA-256(0x00 ‖ d0)``;
* for n > 1, with k the largest power of two < n:
  ``MTH(D[n]) = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n]))``.

Leaves and interior nodes hash under different prefixes (second-preimage resistance), and an odd
node is promoted, never paired with a copy of itself. Bitcoin's duplicate-last-node rule made
``[a, b, c]`` and ``[a, b, c, c]`` share a root (CVE-2012-2459); here they do not.

:func:`merkle_root` and :func:`root_of_leaf_hashes` are on the block-commit path: they run in the
compiled batch module where :mod:`crypto.native` has it, else iteratively on ``hashlib`` (the two
agree; the tests check it). :func:`verify_proof` uses nothing but ``hashlib`` (a light client can
carry this module and :mod:`crypto.native` alone) and never raises: bad input of any shape gives
``False``.

This module must never hash with anything but SHA-256 and must never accept a proof whose length
does not match the path the RFC defines for ``(index, size)``.
"""

from __future__ import annotations

import hashlib

from crypto.native import sha256x

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: at run time this module imports only hashlib, crypto.native
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "MAX_PROOF_LEN",
    "leaf_hash",
    "merkle_proof",
    "merkle_root",
    "node_hash",
    "root_of_leaf_hashes",
    "verify_proof",
]

_LEAF = b"\x00"
_NODE = b"\x01"
_HASH_LEN = 32
# A tree of size < 2**64 has audit paths of at most 64 nodes; anything longer is rejected before
# any hashing, so a hostile proof costs nothing.
MAX_PROOF_LEN = 64

_sha256 = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 ‖ leaf)``."""
    return _sha256(_LEAF + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)``."""
    return _sha256(_NODE + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 Merkle tree hash of ``leaves``."""
    if sha256x is not None:
        return sha256x.merkle_root(leaves)
    if not leaves:
        return _sha256(b"").digest()
    sha = _sha256
    return _root([sha(_LEAF + leaf).digest() for leaf in leaves])


def root_of_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 6962 Merkle tree hash from the leaf hashes (``SHA-256(0x00 ‖ leaf)``) up, for
    callers that computed the leaf hashes already (the orderer does, as transactions arrive).

    Iterative, level by level: pairing adjacent nodes and carrying an odd last node up unchanged
    builds exactly the RFC's "largest power of two" split (each level's left part is a complete
    subtree), without recursion. Each level is joined once and every pair is a 64-byte slice of
    it, which costs half of concatenating prefix, left and right per node.
    """
    if sha256x is not None:
        return sha256x.root_of_leaf_hashes(leaf_hashes)
    return _root(leaf_hashes)


def _root(leaf_hashes: Sequence[bytes]) -> bytes:
    n = len(leaf_hashes)
    if n == 0:
        return _sha256(b"").digest()
    sha = _sha256
    level = list(leaf_hashes)
    while n > 1:
        buf = b"".join(level)
        if len(buf) != _HASH_LEN * n:
            raise ValueError("Merkle nodes must be 32-byte hashes")
        nxt = [sha(_NODE + buf[i : i + 64]).digest() for i in range(0, (n >> 1) * 64, 64)]
        if n & 1:
            nxt.append(level[-1])
        level = nxt
        n = len(level)
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path ``PATH(index, D[n])`` of RFC 6962 §2.1.1, leaf-side first."""
    n = len(leaves)
    if not 0 <= index < n:
        raise IndexError(f"leaf index {index} out of range for a tree of {n} leaves")
    level = [leaf_hash(leaf) for leaf in leaves]
    path: list[bytes] = []
    i = index
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):  # a promoted odd node has no sibling at this level
            path.append(level[sibling])
        nxt = [node_hash(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
        i >>= 1
    return path


def verify_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` is the audit path of ``leaf`` at ``index`` in a tree of ``size`` with ``root``.

    Walks the path as RFC 9162 §2.1.3.2 describes (the verification algorithm for RFC 6962 paths):
    the bits of ``index`` and ``size - 1`` decide on which side each sibling sits and where an odd
    node was promoted; the whole proof must be consumed.
    """
    try:
        if type(index) is not int or type(size) is not int or not 0 <= index < size:
            return False
        if not isinstance(leaf, bytes) or not isinstance(root, bytes) or len(root) != _HASH_LEN:
            return False
        if len(proof) > MAX_PROOF_LEN:
            return False
        fn, sn = index, size - 1
        r = hashlib.sha256(b"\x00" + leaf).digest()
        for p in proof:
            if not isinstance(p, bytes) or len(p) != _HASH_LEN or sn == 0:
                return False
            if fn & 1 or fn == sn:
                r = hashlib.sha256(b"\x01" + p + r).digest()
                if not fn & 1:
                    while fn & 1 == 0 and fn != 0:
                        fn >>= 1
                        sn >>= 1
            else:
                r = hashlib.sha256(b"\x01" + r + p).digest()
            fn >>= 1
            sn >>= 1
        return sn == 0 and r == root
    except Exception:  # never raise to a light client: any odd input is simply "not proven"
        return False
