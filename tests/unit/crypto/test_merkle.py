"""RFC 6962 Merkle trees: known answers, proofs, tamper evidence, no duplicate-node forgery."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import crypto.merkle
import crypto.native
from crypto.merkle import (
    MAX_PROOF_LEN,
    leaf_hash,
    merkle_proof,
    merkle_root,
    node_hash,
    root_of_leaf_hashes,
    verify_proof,
)

# The Certificate Transparency reference leaves and the root of each prefix of them (sizes 1..8),
# as published with the RFC 6962 reference implementation's tests.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # empty tree: SHA-256()
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATHS = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}


@pytest.fixture(
    params=[
        "hashlib",
        pytest.param(
            "compiled",
            marks=pytest.mark.skipif(crypto.native.sha256x is None, reason="crypto._sha256native not in use here"),
        ),
    ]
)
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each root function under test runs on hashlib and, where it is in use, the compiled module."""
    if request.param == "hashlib":
        monkeypatch.setattr(crypto.merkle, "sha256x", None)
    return str(request.param)


@pytest.mark.parametrize("n", range(len(CT_ROOTS)))
def test_rfc6962_roots(n: int, impl: str) -> None:
    assert merkle_root(CT_LEAVES[:n]).hex() == CT_ROOTS[n]


@pytest.mark.parametrize(("index", "size"), sorted(CT_PATHS))
def test_rfc6962_paths(index: int, size: int) -> None:
    path = merkle_proof(CT_LEAVES[:size], index)
    assert [p.hex() for p in path] == CT_PATHS[(index, size)]
    assert verify_proof(CT_LEAVES[index], index, size, path, bytes.fromhex(CT_ROOTS[size]))


# ---- a recursive oracle written straight from RFC 6962 §2.1 / §2.1.1 ----------------------


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path_with_sides(m: int, d: Sequence[bytes]) -> list[tuple[str, bytes]]:
    """PATH(m, D[n]) with the side each sibling sits on."""
    if len(d) <= 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*path_with_sides(m, d[:k]), ("R", mth(d[k:]))]
    return [*path_with_sides(m - k, d[k:]), ("L", mth(d[:k]))]


def sides(m: int, n: int) -> list[str]:
    return [s for s, _ in path_with_sides(m, [b"%d" % i for i in range(n)])]


def test_matches_oracle_for_every_small_tree(impl: str) -> None:
    leaves = [b"leaf %d" % i for i in range(70)]
    for n in range(71):
        assert merkle_root(leaves[:n]) == mth(leaves[:n])
        for m in range(n):
            assert merkle_proof(leaves[:n], m) == [h for _, h in path_with_sides(m, leaves[:n])]


def test_large_tree_matches_oracle(impl: str) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(10_000)]
    assert merkle_root(leaves) == mth(leaves)


def test_root_of_leaf_hashes_matches_oracle(impl: str) -> None:
    for n in [*range(0, 40), 255, 256, 257, 500]:
        leaves = [i.to_bytes(4, "big") * 8 for i in range(n)]
        assert root_of_leaf_hashes([leaf_hash(x) for x in leaves]) == mth(leaves), n
    with pytest.raises(ValueError, match="32-byte"):
        root_of_leaf_hashes([b"short", b"\x00" * 32])


# ---- properties -------------------------------------------------------------------------------

trees = st.lists(st.binary(max_size=12), min_size=1, max_size=40)


@settings(max_examples=60)
@given(trees)
def test_every_leaf_proof_verifies(leaves: list[bytes]) -> None:
    root = merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        assert verify_proof(leaf, i, len(leaves), merkle_proof(leaves, i), root)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    # distinct leaves: in a tree like [x, x] both positions honestly share one proof
    leaves = draw(st.lists(st.binary(max_size=12), min_size=1, max_size=40, unique=True))
    return leaves, draw(st.integers(0, len(leaves) - 1))


@settings(max_examples=150)
@given(tree_and_index(), st.data())
def test_any_change_fails(ti: tuple[list[bytes], int], data: st.DataObject) -> None:
    leaves, i = ti
    n = len(leaves)
    root = merkle_root(leaves)
    proof = merkle_proof(leaves, i)
    leaf = leaves[i]
    assert verify_proof(leaf, i, n, proof, root)
    # leaf
    other = data.draw(st.binary(max_size=12))
    assume(other != leaf)
    assert not verify_proof(other, i, n, proof, root)
    # index: a different position needs a different path shape for the same size
    j = data.draw(st.integers(-2, n + 2))
    if j != i:
        assert not verify_proof(leaf, j, n, proof, root)
    # size: the root binds the size only through the path shape (RFC 6962 §2.1.1), so another
    # size verifies exactly when its path has the same sides; otherwise it must fail.
    size2 = data.draw(st.integers(-1, 2 * n + 2))
    if size2 != n:
        same_shape = 0 <= i < size2 and sides(i, size2) == sides(i, n)
        assert verify_proof(leaf, i, size2, proof, root) is same_shape
    # root
    bit = data.draw(st.integers(0, 255))
    bad_root = bytearray(root)
    bad_root[bit // 8] ^= 1 << (bit % 8)
    assert not verify_proof(leaf, i, n, proof, bytes(bad_root))
    # path: flip a bit of one element, drop one, add one
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        tampered = list(proof)
        tampered[k] = bytes([tampered[k][0] ^ 1]) + tampered[k][1:]
        assert not verify_proof(leaf, i, n, tampered, root)
        assert not verify_proof(leaf, i, n, proof[:k] + proof[k + 1 :], root)
    assert not verify_proof(leaf, i, n, [*proof, b"\x00" * 32], root)


def test_duplicate_odd_node_forgery_changes_root() -> None:
    # CVE-2012-2459: with Bitcoin's rule [a, b, c] and [a, b, c, c] share a root.
    a, b, c = b"tx-a", b"tx-b", b"tx-c"
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])
    five = [b"1", b"2", b"3", b"4", b"5"]
    assert merkle_root(five) != merkle_root([*five, b"5"])
    assert merkle_root(five) != merkle_root([*five, b"5", b"5", b"5"])
    # and a leaf can never be passed off as an interior node (distinct 0x00 / 0x01 prefixes)
    inner = node_hash(leaf_hash(a), leaf_hash(b))
    assert merkle_root([leaf_hash(a) + leaf_hash(b)]) != inner


@pytest.mark.parametrize(
    "args",
    [
        ("x", 0, 1, [], b"\x00" * 32),  # str leaf
        (b"x", 0, 1, [], "00" * 32),  # str root
        (b"x", 0, 1, [], b"\x00" * 31),  # short root
        (b"x", 0, 0, [], b"\x00" * 32),  # empty tree has no leaves
        (b"x", 1, 1, [], b"\x00" * 32),  # index out of range
        (b"x", -1, 2, [b"\x00" * 32], b"\x00" * 32),
        (b"x", True, 2, [b"\x00" * 32], b"\x00" * 32),  # bool is not an index
        (b"x", 0, 2, [b"\x00" * 31], b"\x00" * 32),  # short path element
        (b"x", 0, 2, ["00" * 32], b"\x00" * 32),  # str path element
        (b"x", 0, 2, None, b"\x00" * 32),  # no path at all
        (b"x", 0, 2, 5, b"\x00" * 32),
        (b"x", 0, 2**70, [b"\x00" * 32] * (MAX_PROOF_LEN + 1), b"\x00" * 32),  # over-long path
        (None, None, None, None, None),
    ],
)
def test_verify_proof_never_raises(args: tuple) -> None:
    assert verify_proof(*args) is False


def test_merkle_proof_index_errors() -> None:
    with pytest.raises(IndexError):
        merkle_proof([b"a"], 1)
    with pytest.raises(IndexError):
        merkle_proof([], 0)


def test_merkle_imports_only_hashlib_and_crypto_native() -> None:
    import ast
    import inspect

    import crypto.merkle as mod

    tree = ast.parse(inspect.getsource(mod))
    # Imports under `if TYPE_CHECKING:` never run; drop those blocks before collecting.
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.If):
            node.body = [
                n
                for n in node.body
                if not (isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING")
            ]
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            imported.add(node.module or "")
    assert imported <= {"hashlib", "crypto.native"}
    # crypto.native in turn needs only the standard library and, optionally, the compiled module.
    native = ast.parse(inspect.getsource(crypto.native))
    needs = {a.name for n in ast.walk(native) if isinstance(n, ast.Import) for a in n.names}
    needs |= {n.module or "" for n in ast.walk(native) if isinstance(n, ast.ImportFrom) and n.module != "__future__"}
    assert needs <= {"os", "types", "crypto"}
