"""Contract packages: a contract's Python source with its name, version and proposed policy.

A package holds one or a few Python modules; ``contract.py`` is the entry module and the others
are helpers it may import by their plain names (``import util``). Two canonical encodings
(documented in ``docs/lifecycle.md``):

* the **package file** that ``secprivnode contract package`` writes and ``approve`` reads:
  ``[1, name, version, policy, [[file name, source bytes], ...]]``;
* the **code** that the ledger stores and the hash names: ``[1, name, version, [[file name,
  source bytes], ...]]``. The package hash is ``sha256(Tag.CONTRACT_PACKAGE ‖ code)``; the policy
  is not part of it (changing only the policy keeps the code and its hash, as in Fabric, where the
  endorsement policy belongs to the definition, not to the package).

Files are sorted by name, so building twice from the same sources gives the same bytes. This
module checks shape and limits only; whether the code may run is the sandbox's decision
(:mod:`secprivnode.contracts.sandbox`). It never executes code and never writes to the ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypto.encoding import EncodingError, decode, encode
from crypto.hashing import Tag, digest

__all__ = [
    "ENTRY_MODULE",
    "MAX_PACKAGE_BYTES",
    "MAX_PACKAGE_FILES",
    "PACKAGE_FORMAT",
    "ContractPackage",
    "PackageError",
    "build_package",
]

PACKAGE_FORMAT = 1
ENTRY_MODULE = "contract.py"
# The encoded code of one package. It travels twice in the committing config transaction (as the
# argument and as the state write) and lives in state as one value (MAX_VALUE_BYTES is 1 MiB):
# 256 KiB is ten times the largest contract the city needs and keeps a config block small.
MAX_PACKAGE_BYTES = 256 * 1024
# Modules in one package: "a small set of files", not a library tree.
MAX_PACKAGE_FILES = 16
# What a package file adds to the code: the policy (at most MAX_POLICY_CHARS, 4096, UTF-8 up to
# four bytes each) and its framing.
_FILE_OVERHEAD_BYTES = 4 * 4096 + 16
_MODULE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}\.py$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


class PackageError(ValueError):
    """A package that is malformed, over a limit, or does not match what it claims to be."""


@dataclass(frozen=True, slots=True)
class ContractPackage:
    name: str
    version: str
    policy: str  # the endorsement policy proposed with the package ("" when read from the ledger)
    files: tuple[tuple[str, bytes], ...]  # (module file name, UTF-8 source), sorted by name

    def __post_init__(self) -> None:
        if not _LABEL.match(self.name) or self.name.startswith("_"):
            raise PackageError(f"contract name {self.name!r} must be 1-64 of [A-Za-z0-9_.+-], not starting with _")
        if not _LABEL.match(self.version):
            raise PackageError(f"version {self.version!r} must be 1-64 of [A-Za-z0-9_.+-]")
        if not 0 < len(self.files) <= MAX_PACKAGE_FILES:
            raise PackageError(f"a package holds 1 to {MAX_PACKAGE_FILES} modules, not {len(self.files)}")
        names = [n for n, _ in self.files]
        if names != sorted(set(names)):
            raise PackageError("package files must be sorted by name and distinct")
        for n, src in self.files:
            if not _MODULE_NAME.match(n):
                raise PackageError(f"module file name {n!r} must match {_MODULE_NAME.pattern}")
            try:
                src.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PackageError(f"{n} is not UTF-8: {exc}") from exc
        if ENTRY_MODULE not in names:
            raise PackageError(f"a package must contain {ENTRY_MODULE}")
        size = len(self.code_bytes())
        if size > MAX_PACKAGE_BYTES:
            raise PackageError(f"package code of {size} bytes exceeds {MAX_PACKAGE_BYTES}")

    # ---- encodings --------------------------------------------------------------------------

    def code_obj(self) -> list[Any]:
        return [PACKAGE_FORMAT, self.name, self.version, [[n, s] for n, s in self.files]]

    def code_bytes(self) -> bytes:
        """What the ledger stores at ``package/<hash hex>`` in the ``_config`` namespace."""
        return encode(self.code_obj())

    def file_bytes(self) -> bytes:
        """The package file: the code plus the proposed policy."""
        return encode([PACKAGE_FORMAT, self.name, self.version, self.policy, [[n, s] for n, s in self.files]])

    @property
    def hash(self) -> bytes:
        return digest(Tag.CONTRACT_PACKAGE, self.code_obj())

    def source(self, module: str) -> bytes | None:
        return next((s for n, s in self.files if n == module), None)

    @classmethod
    def from_code_bytes(cls, data: bytes) -> ContractPackage:
        fmt, name, version, files = _fields(data, 4)
        return cls._make(fmt, name, version, "", files)

    @classmethod
    def from_file_bytes(cls, data: bytes) -> ContractPackage:
        fmt, name, version, policy, files = _fields(data, 5)
        if type(policy) is not str or not policy:
            raise PackageError("package policy must be a non-empty string")
        return cls._make(fmt, name, version, policy, files)

    @classmethod
    def _make(cls, fmt: Any, name: Any, version: Any, policy: str, files: Any) -> ContractPackage:
        if fmt != PACKAGE_FORMAT or type(fmt) is not int:
            raise PackageError(f"unknown package format {fmt!r} (this node reads {PACKAGE_FORMAT})")
        if type(name) is not str or type(version) is not str or not isinstance(files, (list, tuple)):
            raise PackageError("package name and version must be strings and files an array")
        out = []
        for f in files:
            if not (isinstance(f, (list, tuple)) and len(f) == 2 and type(f[0]) is str and type(f[1]) is bytes):
                raise PackageError("each package file must be [name, source bytes]")
            out.append((f[0], f[1]))
        return cls(name, version, policy, tuple(out))


def _fields(data: bytes, n: int) -> list[Any]:
    if len(data) > MAX_PACKAGE_BYTES + _FILE_OVERHEAD_BYTES:
        raise PackageError(f"package of {len(data)} bytes exceeds {MAX_PACKAGE_BYTES}")
    try:
        obj = decode(data)
    except EncodingError as exc:
        raise PackageError(f"package is not canonically encoded: {exc}") from exc
    if not isinstance(obj, (list, tuple)) or len(obj) != n:
        raise PackageError(f"package must be an array of {n}")
    return list(obj)


def build_package(source: Path, *, name: str, version: str, policy: str) -> ContractPackage:
    """A package from one ``.py`` file (stored as ``contract.py``) or a directory's ``*.py`` files.

    Only the directory's top level is read, in name order, and nothing but the file names and
    bytes is kept (no timestamps or permissions), so the result depends on the sources alone.
    """
    if not policy:
        raise PackageError("an endorsement policy is required")
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.is_file() and p.suffix == ".py")
        if len(paths) > MAX_PACKAGE_FILES:
            raise PackageError(f"{source} holds {len(paths)} modules; a package holds at most {MAX_PACKAGE_FILES}")
        files = tuple((p.name, p.read_bytes()) for p in paths)
    elif source.is_file():
        files = ((ENTRY_MODULE, source.read_bytes()),)
    else:
        raise PackageError(f"{source} is neither a file nor a directory")
    return ContractPackage(name, version, policy, files)
