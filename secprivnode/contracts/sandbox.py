"""The deterministic sandbox: checks a contract package's source and loads its contract.

Contracts must compute the same read/write set on every endorser (see
:mod:`secprivnode.contracts.stub`). Before any package code runs, :func:`check_module` walks each
module's syntax tree and refuses, naming the rule and the line:

================  ==================================================================================
``float``         float or complex literals (floats are not canonical values and round differently)
``division``      true division ``/`` and ``/=`` (it yields floats; use ``//``)
``forbidden-name`` names that reach I/O, the interpreter or process-specific values: ``open``,
                  ``eval``, ``exec``, ``compile``, ``globals``, ``getattr``, ``print``, ``hash``, ...
``dunder``        any ``__name__``-style attribute or name (the way out of every Python sandbox)
``import``        imports other than :data:`ALLOWED_IMPORTS`, the package's own modules, relative
                  imports and ``import *``
``global``        ``global`` and ``nonlocal`` (state that outlives one call differs between nodes)
================  ==================================================================================

:func:`load_contract` then executes the modules with :data:`SAFE_BUILTINS` only (no ``open``,
``print``, ``hash``, ``id``, ``float``, ...) and an import function that serves only the allowed
modules and the package's own, and instantiates the one :class:`Contract` subclass whose ``name``
is the package's.

This is a guard against accidents and obvious non-determinism, NOT a security boundary against
malicious code: Python cannot be sandboxed in-process. The trust step is the approval of the
package by the channel organisations' admins, as in Fabric. Infinite loops and huge allocations
are not bounded either. This module never touches the ledger, the clock or the file system.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import types
from collections.abc import Mapping
from typing import Any

from secprivnode.contracts.package import ENTRY_MODULE, ContractPackage
from secprivnode.contracts.runtime import Contract

__all__ = [
    "ALLOWED_IMPORTS",
    "API_MODULE",
    "FORBIDDEN_NAMES",
    "SAFE_BUILTINS",
    "SandboxError",
    "check_module",
    "check_package",
    "load_contract",
]

API_MODULE = "secprivnode.contracts.api"
# Modules a contract may import, and why each is safe: none reads the clock, randomness, the
# file system or the network, and none exposes floats a contract could not write anyway.
ALLOWED_IMPORTS: Mapping[str, str] = {
    API_MODULE: "the contract API: Contract, Stub, ContractError, encode/decode",
    "__future__": "compiler directives (annotations) only",
    "typing": "type hints, which change nothing at run time",
    "dataclasses": "plain record classes",
    "re": "pattern matching for input validation; results depend on the input alone",
}

FORBIDDEN_NAMES: frozenset[str] = frozenset(
    {
        # code execution and the interpreter's internals
        "eval", "exec", "compile", "globals", "locals", "vars", "dir", "breakpoint", "help",
        "getattr", "setattr", "delattr", "memoryview", "exit", "quit",
        # I/O
        "open", "input", "print",
        # values that differ between processes or machines
        "hash", "id", "float", "complex", "round",
    }
)  # fmt: skip

_SAFE_BUILTIN_NAMES = (
    # values, containers and pure functions over them
    "abs", "all", "any", "bin", "bool", "bytearray", "bytes", "callable", "chr", "dict", "divmod",
    "enumerate", "filter", "frozenset", "hex", "int", "isinstance", "issubclass", "iter", "len",
    "list", "map", "max", "min", "next", "oct", "ord", "pow", "range", "repr", "reversed", "set",
    "slice", "sorted", "str", "sum", "tuple", "type", "zip",
    # classes
    "classmethod", "object", "property", "staticmethod", "super",
    # exceptions a contract raises or catches
    "ArithmeticError", "AssertionError", "Exception", "IndexError", "KeyError", "LookupError",
    "NotImplementedError", "OverflowError", "RuntimeError", "StopIteration", "TypeError",
    "UnicodeDecodeError", "UnicodeEncodeError", "ValueError", "ZeroDivisionError",
    "NotImplemented", "Ellipsis",
)  # fmt: skip
# The builtins package code runs with; ``__build_class__`` makes ``class`` statements work and
# ``__import__`` is replaced per load by the package's own import function.
SAFE_BUILTINS: Mapping[str, Any] = types.MappingProxyType(
    {n: getattr(builtins, n) for n in _SAFE_BUILTIN_NAMES} | {"__build_class__": builtins.__build_class__}
)


class SandboxError(ValueError):
    """Package code breaks a sandbox rule or cannot be loaded; the message names file, line and rule."""


def _refuse(module: str, node: ast.AST | None, rule: str, detail: str) -> SandboxError:
    line = getattr(node, "lineno", None)
    where = f"{module}:{line}" if line is not None else module
    return SandboxError(f"{where}: rule '{rule}': {detail}")


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _Checker(ast.NodeVisitor):
    def __init__(self, module: str, siblings: frozenset[str]) -> None:
        self.module = module
        self.siblings = siblings

    def fail(self, node: ast.AST, rule: str, detail: str) -> None:
        raise _refuse(self.module, node, rule, detail)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, (float, complex)):
            self.fail(node, "float", f"float literal {node.value!r}: contracts use integers only")

    def _division(self, node: ast.AST, op: ast.operator) -> None:
        if isinstance(op, ast.Div):
            self.fail(node, "division", "true division '/' yields floats; use '//'")

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self._division(node, node.op)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._division(node, node.op)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES:
            self.fail(node, "forbidden-name", f"{node.id!r} is not available to contracts")
        if _is_dunder(node.id):
            self.fail(node, "dunder", f"name {node.id!r}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _is_dunder(node.attr):
            self.fail(node, "dunder", f"attribute {node.attr!r}")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.fail(node, "global", "'global' statements keep state between calls")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.fail(node, "global", "'nonlocal' statements keep state between calls")

    def _module_ok(self, node: ast.AST, name: str) -> None:
        if name not in ALLOWED_IMPORTS and name not in self.siblings:
            allowed = ", ".join(sorted(ALLOWED_IMPORTS))
            self.fail(node, "import", f"module {name!r} is not allowed (allowed: {allowed} and the package's modules)")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module_ok(node, alias.name)
            if "." in alias.name:
                self.fail(node, "import", f"write 'from {alias.name} import ...' instead of 'import {alias.name}'")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.fail(node, "import", "relative imports are not allowed; import package modules by name")
        self._module_ok(node, node.module or "")
        for alias in node.names:
            if alias.name == "*":
                self.fail(node, "import", "'import *' is not allowed")
            if _is_dunder(alias.name):
                self.fail(node, "dunder", f"imported name {alias.name!r}")


def check_module(module: str, source: bytes, siblings: frozenset[str] = frozenset()) -> ast.Module:
    """Parse and check one module of a package; :class:`SandboxError` names the first violation."""
    try:
        tree = ast.parse(source, filename=module)
    except SyntaxError as exc:
        raise SandboxError(f"{module}:{exc.lineno}: rule 'syntax': {exc.msg}") from exc
    except ValueError as exc:  # e.g. NUL bytes in the source
        raise SandboxError(f"{module}: rule 'syntax': {exc}") from exc
    _Checker(module, siblings).visit(tree)
    return tree


def _siblings(pkg: ContractPackage) -> frozenset[str]:
    return frozenset(n.removesuffix(".py") for n, _ in pkg.files if n != ENTRY_MODULE)


def check_package(pkg: ContractPackage) -> dict[str, ast.Module]:
    """Check every module of ``pkg``; return their syntax trees by file name."""
    siblings = _siblings(pkg)
    return {n: check_module(n, src, siblings) for n, src in pkg.files}


class _Loader:
    """Executes a checked package's modules, each once, with the sandbox's builtins and imports."""

    def __init__(self, pkg: ContractPackage, trees: dict[str, ast.Module]) -> None:
        self.pkg = pkg
        self.trees = trees
        self.modules: dict[str, types.ModuleType] = {}
        self.loading: set[str] = set()
        self.builtins = dict(SAFE_BUILTINS) | {"__import__": self._import}

    def _import(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: tuple[str, ...] | None = (),
        level: int = 0,
    ) -> types.ModuleType:
        if level != 0:
            raise ImportError("relative imports are not allowed in contracts")
        if name in ALLOWED_IMPORTS:
            return importlib.import_module(name)
        if f"{name}.py" in self.trees and name != ENTRY_MODULE.removesuffix(".py"):
            return self.run(f"{name}.py")
        raise ImportError(f"module {name!r} is not allowed in contracts")

    def run(self, file: str) -> types.ModuleType:
        if file in self.modules:
            return self.modules[file]
        if file in self.loading:
            raise SandboxError(f"{file}: rule 'import': circular import between package modules")
        self.loading.add(file)
        mod = types.ModuleType(f"contract:{self.pkg.name}/{file.removesuffix('.py')}")
        mod.__dict__["__builtins__"] = self.builtins
        try:
            exec(compile(self.trees[file], file, "exec"), mod.__dict__)
        except SandboxError:
            raise
        except Exception as exc:
            raise SandboxError(f"{file}: executing the module failed: {type(exc).__name__}: {exc}") from exc
        self.loading.discard(file)
        self.modules[file] = mod
        return mod


def _contract_class(pkg: ContractPackage, mod: types.ModuleType) -> type[Contract]:
    found = [
        v
        for v in vars(mod).values()
        if isinstance(v, type) and issubclass(v, Contract) and v is not Contract and v.name == pkg.name
    ]
    if len(found) != 1:
        raise SandboxError(
            f"{ENTRY_MODULE}: expected exactly one Contract subclass with name = {pkg.name!r}, found {len(found)}"
        )
    cls = found[0]
    if cls.version and cls.version != pkg.version:
        raise SandboxError(f"{ENTRY_MODULE}: class declares version {cls.version!r}, package is {pkg.version!r}")
    if not cls.functions:
        raise SandboxError(f"{ENTRY_MODULE}: contract {pkg.name!r} has no @transaction or @query functions")
    return cls


def load_contract(pkg: ContractPackage) -> Contract:
    """Check ``pkg``, execute it in the sandbox and return an instance of its contract."""
    loader = _Loader(pkg, check_package(pkg))
    cls = _contract_class(pkg, loader.run(ENTRY_MODULE))
    try:
        return cls()
    except Exception as exc:
        raise SandboxError(f"{ENTRY_MODULE}: creating the contract failed: {type(exc).__name__}: {exc}") from exc
