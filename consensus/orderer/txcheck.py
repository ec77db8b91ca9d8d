"""Admission checks on transaction bytes: shape and canonical form (fast), creator (batched).

A block's bytes are built by concatenating its transactions' bytes (see :mod:`.blocks`), and
every committer decodes a block with the strict canonical decoder. One non-canonical or
misshapen transaction would therefore make a whole block undecodable and stall the channel, so
the orderer must admit exactly the bytes that ``Transaction.decode`` accepts, and no others.

:func:`inspect_tx` does that at a fraction of the cost of ``Transaction.decode`` (which builds
a dozen dataclasses per transaction): one C-level unpack and re-pack (shortest forms, no trailing
bytes), a map hook that checks key order (maps occur only inside contract arguments), and a walk
over the fixed :class:`~storage.model.Transaction` shape that type-checks every field and rejects
floats and over-deep nesting in the arguments. The property tests check it against
``Transaction.decode``. It returns the tx id (hash of the proposal header bytes) and the block's
Merkle leaf hash (RFC 6962 ``SHA-256(0x00 ‖ tx hash)``, the tx hash being the hash of the
transaction bytes), computed on the input bytes, never on re-encoded objects. Every hash a
transaction needs is computed here once, when it enters the pool, so that with
``inspect_workers`` all of them run on a worker process and block assembly only pairs leaves.
:func:`inspect_many` returns columns (ids, leaves, refusals), which cross a process boundary at
a fraction of the cost of per-transaction objects.

:class:`CreatorChecker` checks creator signatures (strict low-S, over ``proposal.hash()``) and
channel membership (MSP validation at an injected time) for many transactions at once, through
:class:`crypto.batch.BatchVerifier`, so large batches spread over worker processes.

This module must never read the clock and never accept bytes that ``Transaction.decode`` rejects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

import msgpack

from consensus.orderer.errors import InvalidTransaction
from crypto.batch import BatchVerifier
from crypto.encoding import MAX_DEPTH
from crypto.hashing import Tag, digest_bytes
from crypto.msp import IdentityError
from crypto.signing import PublicKey

__all__ = [
    "ARG_BLOCK_DEPTH",
    "DATA",
    "LEAF_HASH",
    "TX_ID",
    "CreatorChecker",
    "IdentityLike",
    "InspectResult",
    "MSPLike",
    "TxInfo",
    "inspect_many",
    "inspect_tx",
    "proposal_slice",
]

# Depth of a contract argument inside a block: block array (0) -> transactions (1) -> tx (2) ->
# proposal (3) -> args (4) -> argument (5). Containers must sit at a depth below MAX_DEPTH in the
# *block*, or committers' canonical decoder would refuse the whole block.
ARG_BLOCK_DEPTH = 5

_PROPOSAL_HEADER_TAG = Tag.PROPOSAL_HEADER
_TRANSACTION_TAG = Tag.TRANSACTION
_MERKLE_LEAF = b"\x00"  # RFC 6962 §2.1 leaf prefix
_PROPOSAL_TAG = Tag.PROPOSAL
_unpackb = msgpack.unpackb
# One packer reused: building a Packer per call costs more than packing a small array. Its pack()
# runs entirely under the GIL, so concurrent callers cannot interleave inside it.
_pack = msgpack.Packer(use_bin_type=True).pack
_sha256 = hashlib.sha256
_SCALARS = frozenset({bytes, str, int, bool, type(None)})


# What the orderer keeps per admitted transaction, by position (TX_ID, LEAF_HASH, DATA):
# * tx id: digest(PROPOSAL_HEADER, header);
# * Merkle leaf hash: SHA-256(0x00 ‖ digest(TRANSACTION, tx)), the block's leaf (RFC 6962 §2.1);
# * the canonical transaction bytes, unchanged.
# A plain tuple, not a NamedTuple: it is built per transaction in C (zip), and the garbage
# collector stops tracking a plain tuple of bytes at its first collection, whereas instances of a
# tuple subclass stay tracked, reach the oldest generation and make its full collections (which
# stall the leader's event loop) both more frequent and longer.
TxInfo = tuple[bytes, bytes, bytes]
TX_ID, LEAF_HASH, DATA = 0, 1, 2


class _Bad(Exception):
    """Internal: shape violation, turned into InvalidTransaction('malformed')."""


def _reject_ext(code: int, data: bytes) -> Any:
    raise _Bad(f"extension type {code}")


def _map_hook(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    prev = None
    for k, _ in pairs:
        if type(k) is not str:
            raise _Bad("map key must be str")
        if prev is not None and not prev < k:
            raise _Bad("map keys not sorted or not unique")
        prev = k
    return dict(pairs)


def _arg_ok(v: Any, depth: int) -> None:
    """Contract arguments: any canonical value but floats, containers below MAX_DEPTH in a block."""
    t = type(v)
    if t in _SCALARS:
        return
    if depth >= MAX_DEPTH:
        raise _Bad("argument nesting too deep")
    if t is tuple:
        for x in v:
            _arg_ok(x, depth + 1)
    elif t is dict:
        for x in v.values():
            _arg_ok(x, depth + 1)
    else:
        raise _Bad(f"{t.__name__} not allowed in arguments")


def _arr(v: Any, n: int) -> tuple[Any, ...]:
    if type(v) is not tuple or len(v) != n:
        raise _Bad(f"expected an array of {n}")
    return v


def _reads_ok(reads: Any) -> None:
    if type(reads) is not tuple:
        raise _Bad("reads: expected an array")
    for r in reads:
        k, ver = _arr(r, 2)
        if type(k) is not str:
            raise _Bad("read key")
        if ver is not None:
            a, b = _arr(ver, 2)
            if type(a) is not int or type(b) is not int:
                raise _Bad("read version")


def _hash32(v: Any, what: str) -> None:
    if type(v) is not bytes or len(v) != 32:
        raise _Bad(what)


def _collections_ok(colls: Any) -> None:
    """The hashed private collections of an rwset (its optional fifth field)."""
    if type(colls) is not tuple or not colls:
        raise _Bad("rwset collections: expected a non-empty array")
    for c in colls:
        name, reads, writes = _arr(c, 3)
        if type(name) is not str or type(reads) is not tuple or type(writes) is not tuple:
            raise _Bad("collection hashes field types")
        for r in reads:
            k, ver = _arr(r, 2)
            _hash32(k, "hashed read key")
            if ver is not None:
                a, b = _arr(ver, 2)
                if type(a) is not int or type(b) is not int:
                    raise _Bad("hashed read version")
        for w in writes:
            k, v = _arr(w, 2)
            _hash32(k, "hashed write key")
            if v is not None:
                _hash32(v, "hashed write value")


def _shape_ok(obj: Any) -> tuple[Any, ...]:
    """Type-check ``obj`` against Transaction.from_obj; return the proposal header array.

    The common case (no events, reads, ranges or endorsements; scalar arguments) costs a few
    type tests; the loops only run for what is there. Checks are inlined: this runs per tx.
    """
    if type(obj) is not tuple or not 5 <= len(obj) <= 6:
        raise _Bad("transaction: expected an array of 5 or 6")
    proposal, sig, response, rwset, ends = obj[:5]
    if type(proposal) is not tuple or len(proposal) != 4:
        raise _Bad("proposal: expected an array of 4")
    header, contract, function, args = proposal
    if type(header) is not tuple or len(header) != 4:
        raise _Bad("proposal header: expected an array of 4")
    ch, creator, nonce, ts = header
    if type(ch) is not str or type(creator) is not bytes or type(nonce) is not bytes or type(ts) is not int:
        raise _Bad("proposal header field types")
    if type(contract) is not str or type(function) is not str or type(args) is not tuple:
        raise _Bad("proposal field types")
    for a in args:
        if type(a) not in _SCALARS:
            _arg_ok(a, ARG_BLOCK_DEPTH)
    if type(sig) is not bytes:
        raise _Bad("signature")
    if type(response) is not tuple or len(response) != 4:
        raise _Bad("response: expected an array of 4")
    status, message, payload, events = response
    if type(status) is not int or type(message) is not str or type(payload) is not bytes or type(events) is not tuple:
        raise _Bad("response field types")
    for ev in events:
        name, data = _arr(ev, 2)
        if type(name) is not str or type(data) is not bytes:
            raise _Bad("event")
    _rwset_ok(rwset)
    if type(ends) is not tuple:
        raise _Bad("endorsements: expected an array")
    for en in ends:
        who, esig = _arr(en, 2)
        if type(who) is not bytes or type(esig) is not bytes:
            raise _Bad("endorsement")
    if len(obj) == 6:  # the read/write sets of the contracts the called contract called
        extra = obj[5]
        if type(extra) is not tuple or not extra:
            raise _Bad("extra rwsets: expected a non-empty array")
        for rw in extra:
            _rwset_ok(rw)
    return header


def _rwset_ok(rwset: Any) -> None:
    if type(rwset) is not tuple or len(rwset) not in (4, 5):
        raise _Bad("rwset: expected an array of 4 or 5")
    ns, reads, writes, ranges = rwset[:4]
    if len(rwset) == 5:
        _collections_ok(rwset[4])
    if type(ns) is not str or type(reads) is not tuple or type(writes) is not tuple or type(ranges) is not tuple:
        raise _Bad("rwset field types")
    if reads:
        _reads_ok(reads)
    for w in writes:
        k, v = _arr(w, 2)
        if type(k) is not str or (v is not None and type(v) is not bytes):
            raise _Bad("write")
    for q in ranges:
        s, e, rd = _arr(q, 3)
        if type(s) is not str or type(e) is not str:
            raise _Bad("range bounds")
        _reads_ok(rd)


def inspect_tx(data: bytes, channel: str, max_bytes: int) -> TxInfo:
    """Check ``data`` is a canonical Transaction for ``channel`` of at most ``max_bytes``.

    Raises :class:`InvalidTransaction` with reason ``too_large``, ``malformed`` or
    ``wrong_channel``.
    """
    tx_id, leaf = _check(data, channel, max_bytes)
    return (tx_id, leaf, data)


def _check(data: bytes, channel: str, max_bytes: int) -> tuple[bytes, bytes]:
    """:func:`inspect_tx` without building the TxInfo: ``(tx id, Merkle leaf hash)``."""
    if type(data) is not bytes:
        raise InvalidTransaction("malformed", f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise InvalidTransaction("too_large", f"{len(data)} bytes exceeds absolute_max_bytes {max_bytes}")
    try:
        obj = _unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=True,
            ext_hook=_reject_ext,
            object_pairs_hook=_map_hook,
        )
        header = _shape_ok(obj)
        # Re-packing yields shortest forms; equality proves the input used them and had no
        # trailing bytes (the unpacker already refused those).
        if _pack(obj) != data:
            raise _Bad("non-canonical encoding")
        header_bytes = _pack(header)
    except _Bad as exc:
        raise InvalidTransaction("malformed", str(exc)) from None
    except Exception as exc:  # the C unpacker raises several unrelated types for bad input
        raise InvalidTransaction("malformed", f"{type(exc).__name__}: {exc}") from None
    if header[0] != channel:
        raise InvalidTransaction("wrong_channel", f"transaction is for channel {header[0]!r}, not {channel!r}")
    return (
        _sha256(_PROPOSAL_HEADER_TAG + header_bytes).digest(),
        _sha256(_MERKLE_LEAF + _sha256(_TRANSACTION_TAG + data).digest()).digest(),
    )


# What inspect_many returns: tx ids and Merkle leaf hashes (b"" for a refused transaction), and
# the refusals as (position, reason, detail).
InspectResult = tuple[list[bytes], list[bytes], list[tuple[int, str, str]]]


def inspect_many(datas: Sequence[bytes], channel: str, max_bytes: int) -> InspectResult:
    """:func:`inspect_tx` over many transactions, in a form cheap to send between processes:
    columns of 32-byte hashes, and the bytes are not echoed back (the caller still holds them)."""
    ids: list[bytes] = []
    leaves: list[bytes] = []
    refused: list[tuple[int, str, str]] = []
    for i, data in enumerate(datas):
        try:
            tx_id, leaf = _check(data, channel, max_bytes)
        except InvalidTransaction as exc:
            refused.append((i, exc.reason, exc.detail))
            tx_id = leaf = b""
        ids.append(tx_id)
        leaves.append(leaf)
    return ids, leaves, refused


def proposal_slice(data: bytes) -> tuple[bytes, bytes, bytes]:
    """``(proposal bytes, creator, signature)`` of canonical transaction bytes (checked earlier).

    The proposal is the transaction's first element, so its canonical bytes are a slice of the
    transaction's: ``proposal.hash() == digest_bytes(Tag.PROPOSAL, slice)``, no re-encoding.
    """
    u = msgpack.Unpacker(raw=False, use_list=False)
    u.feed(data)
    n = u.read_array_header()
    assert n in (5, 6), "proposal_slice called on bytes inspect_tx did not admit"  # 6: with calls' rwsets
    start = u.tell()
    proposal = u.unpack()
    end = u.tell()
    signature = u.unpack()
    return data[start:end], proposal[0][1], signature


class IdentityLike(Protocol):
    @property
    def public_key(self) -> PublicKey: ...


class MSPLike(Protocol):
    """What the creator check needs of :class:`crypto.msp.MSP`."""

    def validate(self, cert: bytes, *, now: int, roles: Collection[Any] | None = None) -> IdentityLike: ...


class CreatorChecker:
    """Creator signature and membership checks for batches of admitted transactions.

    ``msp_provider`` returns the channel's current MSP (it changes with config blocks); ``roles``
    are the creator roles allowed to submit (None: any member). ``verifier`` may be shared with
    the node's block validation so one process pool serves both.
    """

    def __init__(
        self,
        msp_provider: Callable[[], MSPLike],
        verifier: BatchVerifier,
        roles: Collection[Any] | None = None,
    ) -> None:
        self._msp_provider = msp_provider
        self._verifier = verifier
        self._roles = roles

    def check(self, txs: Sequence[TxInfo], now_s: int) -> list[InvalidTransaction | None]:
        """Per transaction: ``None`` if its creator is a current member and signed it, else the error.

        Blocking (it may wait for worker processes): run it in an executor from async code.
        """
        msp = self._msp_provider()
        keys: dict[bytes, PublicKey | InvalidTransaction] = {}
        items: list[tuple[PublicKey, bytes, bytes]] = []
        slots: list[int] = []
        out: list[InvalidTransaction | None] = [None] * len(txs)
        for i, tx in enumerate(txs):
            proposal, creator, signature = proposal_slice(tx[DATA])
            key = keys.get(creator)
            if key is None:
                try:
                    key = msp.validate(creator, now=now_s, roles=self._roles).public_key
                except IdentityError as exc:
                    key = InvalidTransaction("bad_creator", f"{type(exc).__name__}: {exc}")
                keys[creator] = key
            if isinstance(key, InvalidTransaction):
                out[i] = key
                continue
            items.append((key, signature, digest_bytes(_PROPOSAL_TAG, proposal)))
            slots.append(i)
        if items:
            results = self._verifier.verify_many(items)
            for i, ok in zip(slots, results, strict=True):
                if not ok:
                    out[i] = InvalidTransaction("bad_signature", "creator signature does not verify (strict low-S)")
        return out
