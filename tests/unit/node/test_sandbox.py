"""Contract packages and the deterministic sandbox: building, encodings, limits, and every rule."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pipeline_kit import FakeState, Pki

from crypto.encoding import encode
from crypto.hashing import Tag, digest
from secprivnode.contracts.package import (
    MAX_PACKAGE_BYTES,
    MAX_PACKAGE_FILES,
    ContractPackage,
    PackageError,
    build_package,
)
from secprivnode.contracts.runtime import simulate
from secprivnode.contracts.sandbox import SAFE_BUILTINS, SandboxError, check_module, load_contract
from storage.model import Proposal, ProposalHeader

HEAD = "from secprivnode.contracts.api import Contract, ContractError, Stub, query, transaction\n"

GOOD = (
    HEAD
    + """
from typing import Any


class Kv(Contract):
    name = "kv"

    @transaction
    def put(self, stub: Stub, key: str, value: int) -> None:
        if value < 0:
            raise ContractError("negative")
        stub.put_value(key, value // 2)

    @query
    def get(self, stub: Stub, key: str) -> bytes:
        return stub.get_state(key) or b""
"""
)


def pkg(source: str, name: str = "kv", version: str = "1.0", **extra: str) -> ContractPackage:
    files = {"contract.py": source.encode(), **{f"{k}.py": v.encode() for k, v in extra.items()}}
    return ContractPackage(name, version, "ANY(node)", tuple(sorted(files.items())))


# ---- packages -----------------------------------------------------------------------------------


def test_build_is_deterministic_and_hash_domain_separated(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    # the same files written in a different order, with other timestamps and an ignored non-.py file
    (a / "contract.py").write_text(GOOD)
    (a / "util.py").write_text("X = 1\n")
    (b / "util.py").write_text("X = 1\n")
    (b / "contract.py").write_text(GOOD)
    (b / "README.txt").write_text("not packaged")
    pa = build_package(a, name="kv", version="1.0", policy="ANY(node)")
    pb = build_package(b, name="kv", version="1.0", policy="ANY(node)")
    assert pa.file_bytes() == pb.file_bytes() and pa.hash == pb.hash
    assert [n for n, _ in pa.files] == ["contract.py", "util.py"]
    assert pa.hash == digest(Tag.CONTRACT_PACKAGE, pa.code_obj()) != hashlib.sha256(pa.code_bytes()).digest()
    # the policy is in the file, not in the code or the hash
    other = build_package(a, name="kv", version="1.0", policy="MAJORITY(node)")
    assert other.hash == pa.hash and other.file_bytes() != pa.file_bytes()
    # round trips
    assert ContractPackage.from_file_bytes(pa.file_bytes()) == pa
    assert ContractPackage.from_code_bytes(pa.code_bytes()).hash == pa.hash
    # a single file is stored as contract.py
    single = build_package(a / "util.py", name="kv", version="1.0", policy="ANY(node)")
    assert [n for n, _ in single.files] == ["contract.py"]


@pytest.mark.parametrize(
    ("files", "name", "message"),
    [
        ({"util.py": b"X = 1\n"}, "kv", "must contain contract.py"),
        ({"contract.py": b"", "Bad-Name.py": b""}, "kv", "module file name"),
        ({"contract.py": b"\xff\xfe"}, "kv", "not UTF-8"),
        ({"contract.py": b"x" * (MAX_PACKAGE_BYTES + 1)}, "kv", "exceeds"),
        ({f"m{i}.py": b"" for i in range(MAX_PACKAGE_FILES)} | {"contract.py": b""}, "kv", "modules"),
        ({"contract.py": b""}, "_system", "must be 1-64"),
    ],
)
def test_package_limits(files: dict[str, bytes], name: str, message: str) -> None:
    with pytest.raises(PackageError, match=message):
        ContractPackage(name, "1.0", "ANY(node)", tuple(sorted(files.items())))


def test_malformed_package_bytes_are_refused() -> None:
    good = pkg(GOOD)
    with pytest.raises(PackageError, match="canonically"):
        ContractPackage.from_code_bytes(good.code_bytes() + b"\x00")
    with pytest.raises(PackageError, match="format"):
        ContractPackage.from_code_bytes(encode([2, "kv", "1.0", [["contract.py", b""]]]))
    with pytest.raises(PackageError, match="array of 5"):
        ContractPackage.from_file_bytes(good.code_bytes())


# ---- the sandbox -----------------------------------------------------------------------------------


def test_good_contract_loads_and_runs(state: FakeState, pki: Pki) -> None:
    contract = load_contract(pkg(GOOD))
    assert contract.name == "kv" and sorted(contract.functions) == ["get", "put"]
    p = Proposal(ProposalHeader("city", b"c", b"n" * 24, 0), "kv", "put", ("k", 9))
    sim = simulate(contract, p, state, pki["health/alice"].caller, 0)
    assert sim.response.status == 200 and sim.rwset.writes[0].value == encode(4)


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("X = 1.5", "rule 'float': float literal 1.5"),
        ("X = 2j", "rule 'float'"),
        ("X = 7 / 2", "rule 'division'"),
        ("X = 7\nX /= 2", "rule 'division'"),
        ("open('x')", "rule 'forbidden-name': 'open'"),
        ("eval('1')", "rule 'forbidden-name': 'eval'"),
        ("exec('1')", "rule 'forbidden-name': 'exec'"),
        ("compile('1', 'x', 'exec')", "rule 'forbidden-name': 'compile'"),
        ("globals()", "rule 'forbidden-name': 'globals'"),
        ("getattr(int, 'real')", "rule 'forbidden-name': 'getattr'"),
        ("print('x')", "rule 'forbidden-name': 'print'"),
        ("hash('x')", "rule 'forbidden-name': 'hash'"),
        ("float('1')", "rule 'forbidden-name': 'float'"),
        ("__import__('os')", "rule 'dunder': name '__import__'"),
        ("X = ().__class__", "rule 'dunder': attribute '__class__'"),
        ("import time", "rule 'import': module 'time' is not allowed"),
        ("import random", "rule 'import': module 'random'"),
        ("from os import path", "rule 'import': module 'os'"),
        ("import secprivnode.contracts.api", "rule 'import': write 'from secprivnode.contracts.api import"),
        ("from typing import *", "rule 'import': 'import *'"),
        ("from . import x", "rule 'import': relative imports"),
        ("def f():\n    global X", "rule 'global'"),
        ("def f():\n    x = 1\n    def g():\n        nonlocal x", "rule 'global'"),
        ("def f(:", "rule 'syntax'"),
    ],
)
def test_each_rule_is_refused_with_file_line_and_rule(line: str, rule: str) -> None:
    source = HEAD + "\n" + line + "\n"
    with pytest.raises(SandboxError) as info:
        load_contract(pkg(source))
    message = str(info.value)
    assert rule in message, message
    offending = 3 + line.count("\n")  # the last line of the snippet breaks the rule
    if "syntax" not in rule:
        assert message.startswith(f"contract.py:{offending}: "), message  # file and the offending line


def test_rules_apply_to_every_module_of_a_package() -> None:
    with pytest.raises(SandboxError, match=r"^util.py:1: rule 'import'"):
        load_contract(pkg(GOOD, util="import socket\n"))


def test_package_modules_import_each_other_by_name(state: FakeState, pki: Pki) -> None:
    source = GOOD.replace("value // 2", "halve(value)") + "\nfrom util import halve\n"
    contract = load_contract(pkg(source, util="def halve(n: int) -> int:\n    return n // 2\n"))
    p = Proposal(ProposalHeader("city", b"c", b"n" * 24, 0), "kv", "put", ("k", 9))
    assert simulate(contract, p, state, pki["health/alice"].caller, 0).rwset.writes[0].value == encode(4)
    with pytest.raises(SandboxError, match="circular import"):
        load_contract(pkg(GOOD + "import a\n", a="import b\n", b="import a\n"))


def test_builtins_are_restricted_at_run_time(state: FakeState, pki: Pki) -> None:
    for name in ("open", "print", "hash", "id", "float", "__import__", "eval", "input", "memoryview"):
        assert name not in SAFE_BUILTINS, name
    # ascii() is no forbidden name the checker knows, but it is not among the safe builtins either
    source = GOOD.replace('return stub.get_state(key) or b""', "return ascii(key).encode()")
    contract = load_contract(pkg(source))
    p = Proposal(ProposalHeader("city", b"c", b"n" * 24, 0), "kv", "get", ("k",))
    resp = simulate(contract, p, state, pki["health/alice"].caller, 0, read_only=True).response
    assert resp.status == 500 and "NameError" in resp.message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (HEAD, "expected exactly one Contract subclass with name = 'kv', found 0"),
        (GOOD.replace('name = "kv"', 'name = "other"'), "found 0"),
        (GOOD.replace('name = "kv"', 'name = "kv"\n    version = "9"'), "class declares version '9'"),
        (HEAD + "raise ValueError('boom')\n", "executing the module failed: ValueError: boom"),
    ],
)
def test_contract_shape_is_checked_at_load(source: str, message: str) -> None:
    with pytest.raises(SandboxError, match=message):
        load_contract(pkg(source))


def test_the_assets_sample_passes_the_sandbox() -> None:
    from secprivnode.network import assets_package

    contract = load_contract(assets_package("ANY(node)"))
    assert contract.name == "assets" and "create" in contract.functions
    assert check_module("x.py", b"X = 1\n").body  # a plain module parses to its statements
