"""The contract runtime: contract classes, function registration, the registry, and simulation.

A contract is a subclass of :class:`Contract` with a ``name`` (its state namespace and the name
proposals use) and methods marked :func:`transaction` (may write) or :func:`query` (read-only)::

    class Counter(Contract):
        name = "counter"

        @transaction
        def add(self, stub: Stub, key: str, n: int) -> bytes:
            ...

Each function takes the :class:`~secprivnode.contracts.stub.Stub` and the proposal's args (canonical
values: ``None``, bool, int, str, bytes, tuples, dicts — never floats) and returns ``bytes`` (the
response payload) or ``None``. Raising :class:`ContractError` gives a 4xx response with its
message; any other exception is a bug in the contract and gives 500 without harming the node.

:func:`simulate` runs one proposal and returns its response and read/write sets: the called
contract's, and one for each other contract it called through ``stub.invoke_contract`` (found by
the ``resolve`` function the endorser passes in). Contracts must be deterministic (see
:mod:`secprivnode.contracts.stub`); the node only runs contracts that are both installed in the
local :class:`ContractRegistry` and defined in the channel configuration.

This module never writes to the ledger; contract exceptions never escape :func:`simulate`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeVar

from crypto.encoding import EncodingError, encode
from secprivnode.contracts.stub import Caller, ContractError, PrivateReader, ReadOnlyViolation, StateReader, Stub
from storage.model import Proposal, ReadWriteSet, Response
from storage.privstate import WriteSet

__all__ = [
    "MAX_MESSAGE_CHARS",
    "Contract",
    "ContractError",
    "ContractRegistry",
    "FunctionSpec",
    "Resolver",
    "Simulated",
    "query",
    "simulate",
    "transaction",
]

# Error messages travel in responses (and, for committed txs, in blocks): keep them short.
MAX_MESSAGE_CHARS = 1024

_F = TypeVar("_F", bound=Callable[..., Any])
_KIND_ATTR = "__contract_kind__"


def transaction(fn: _F) -> _F:
    """Mark a contract method as an invoke: it may write state and is ordered."""
    setattr(fn, _KIND_ATTR, "transaction")
    return fn


def query(fn: _F) -> _F:
    """Mark a contract method as read-only: writing raises and gives a 500 response."""
    setattr(fn, _KIND_ATTR, "query")
    return fn


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str
    kind: str  # "transaction" | "query"
    fn: Callable[..., Any]
    signature: inspect.Signature

    @property
    def read_only(self) -> bool:
        return self.kind == "query"

    def describe(self) -> dict[str, Any]:
        """``{name, kind, params}``: the arguments after the stub, optional ones as ``name?``."""
        params = list(self.signature.parameters.values())[2:]  # after self and the stub
        names = [p.name + ("?" if p.default is not inspect.Parameter.empty else "") for p in params]
        return {"name": self.name, "kind": self.kind, "params": names}


class Contract:
    """Base class of contracts; subclasses set ``name`` and decorate their functions."""

    name: ClassVar[str] = ""
    # Checked against the channel's ContractDefinition.version when set ("" accepts any definition).
    version: ClassVar[str] = ""
    functions: ClassVar[Mapping[str, FunctionSpec]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, FunctionSpec] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                kind = getattr(value, _KIND_ATTR, None)
                if kind is not None and callable(value):
                    found[attr] = FunctionSpec(attr, kind, value, inspect.signature(value))
        cls.functions = found


class ContractRegistry:
    """The contracts installed on this node, by name."""

    def __init__(self, contracts: Iterable[Contract] = ()) -> None:
        self._contracts: dict[str, Contract] = {}
        for c in contracts:
            self.install(c)

    def install(self, contract: Contract) -> None:
        name = contract.name
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ValueError(f"contract {type(contract).__name__} has no valid name")
        if name in self._contracts:
            raise ValueError(f"contract {name!r} is already installed")
        if not contract.functions:
            raise ValueError(f"contract {name!r} has no @transaction or @query functions")
        self._contracts[name] = contract

    def get(self, name: str) -> Contract | None:
        return self._contracts.get(name)

    def names(self) -> list[str]:
        return sorted(self._contracts)

    def __contains__(self, name: object) -> bool:
        return name in self._contracts


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 3] + "..."


def _empty(ns: str) -> ReadWriteSet:
    return ReadWriteSet(ns)


class _GuardedState:
    """Passes reads through; remembers a failure of the ledger itself so it is not blamed on the contract."""

    __slots__ = ("_inner", "failure")

    def __init__(self, inner: StateReader) -> None:
        self._inner = inner
        self.failure: BaseException | None = None

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            self.failure = exc
            raise

    def get_state(self, ns: str, key: str) -> Any:
        return self._call(self._inner.get_state, ns, key)

    def get_range(self, ns: str, start: str, end: str, limit: int | None = None) -> Any:
        return self._call(self._inner.get_range, ns, start, end, limit)

    def get_history(self, ns: str, key: str, limit: int | None = None) -> Any:
        return self._call(self._inner.get_history, ns, key, limit)


# The contract a call names, as the channel defines it at the simulated state; raises
# ContractError (404) when no such contract may run there.
Resolver = Callable[[str], Contract]


class Simulated(NamedTuple):
    """A simulation's outcome: an error response comes with an empty rwset and no extra ones."""

    response: Response
    rwset: ReadWriteSet
    extra_rwsets: tuple[ReadWriteSet, ...] = ()
    private: tuple[WriteSet, ...] = ()  # plaintext private writes: never in a read/write set


class _CallError(Exception):
    """A call that cannot start (no such function, bad arguments): the caller's 4xx."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _function(contract: Contract, function: str, args: tuple[Any, ...]) -> FunctionSpec:
    """The spec of ``contract.function`` if ``args`` fit it; raise _CallError otherwise."""
    where = f"{contract.name}.{function}"
    spec = contract.functions.get(function)
    if spec is None:
        raise _CallError(404, f"contract {contract.name!r} has no function {function!r}")
    try:
        encode(list(args))
    except EncodingError as exc:
        raise _CallError(400, f"{where}: arguments are not canonical values: {exc}") from exc
    try:
        spec.signature.bind(contract, None, *args)
    except TypeError as exc:
        raise _CallError(400, f"{where}: bad arguments: {exc}") from exc
    return spec


def _result_bytes(result: Any, where: str) -> bytes:
    if result is None:
        return b""
    if type(result) is not bytes:
        raise TypeError(f"{where} returned {type(result).__name__}, expected bytes or None")
    return result


def _invoker(resolve: Resolver | None) -> Callable[[Stub, str, str, tuple[Any, ...]], bytes]:
    def invoke(stub: Stub, name: str, function: str, args: tuple[Any, ...]) -> bytes:
        if resolve is None:
            raise ContractError("contract calls are not available in this simulation")
        callee = resolve(name)
        try:
            spec = _function(callee, function, args)
        except _CallError as exc:
            raise ContractError(exc.message, exc.status) from exc
        child = stub.callee(callee.name, args, read_only=spec.read_only)
        return _result_bytes(spec.fn(callee, child, *args), f"{callee.name}.{function}")

    return invoke


def simulate(
    contract: Contract,
    proposal: Proposal,
    state: StateReader,
    caller: Caller,
    last_block_time_ms: int,
    *,
    read_only: bool = False,
    resolve: Resolver | None = None,
    private: PrivateReader | None = None,
) -> Simulated:
    """Run ``proposal`` on committed ``state``; an error response comes with an empty rwset.

    ``last_block_time_ms`` is the timestamp of the latest block committed to ``state``.
    ``resolve`` finds the contracts that ``contract`` calls; without it, calls fail with a 4xx.
    With ``private``, contracts may use private collections: the read/write sets carry hashes,
    and the plaintext of the private writes comes back in ``Simulated.private``.
    """
    ns = contract.name
    where = f"{ns}.{proposal.function}"
    try:
        spec = _function(contract, proposal.function, proposal.args)
    except _CallError as exc:
        return Simulated(Response(exc.status, _clip(exc.message)), _empty(ns))
    guarded = _GuardedState(state)
    stub = Stub(
        guarded,
        ns,
        tx_id=proposal.tx_id,
        caller=caller,
        last_block_time_ms=last_block_time_ms,
        args=proposal.args,
        transient=proposal.transient,
        read_only=read_only or spec.read_only,
        invoker=_invoker(resolve),
        private=private,
    )
    error: Response | None = None
    result = b""
    try:
        result = _result_bytes(spec.fn(contract, stub, *proposal.args), where)
    except ContractError as exc:
        error = Response(exc.status, _clip(exc.message))
    except ReadOnlyViolation as exc:
        error = Response(500, _clip(f"{where}: {exc}"))
    except RecursionError:
        error = Response(500, _clip(f"{where} failed: recursion too deep"))
    except Exception as exc:  # contract code is untrusted in its correctness: a bug must not crash the node
        error = Response(500, _clip(f"{where} failed: {type(exc).__name__}: {exc}"))
    if guarded.failure is not None:  # the ledger failed, not the contract: that is the node's problem
        raise guarded.failure
    if error is not None:
        return Simulated(error, _empty(ns))
    response = Response(200, "", result, stub.events)
    return Simulated(response, stub.rwset(), stub.extra_rwsets(), tuple(stub.private_write_sets()))
