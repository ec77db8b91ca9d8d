"""The sample ``assets`` contract: records with an owner, and a blind key/value workload.

Assets live under ``asset/<id>`` as canonical-encoded dicts::

    {"id": str, "owner": str, "value": <canonical value>, "created_after_ms": int,
     "updated_after_ms": int, "creator": "org/name"}

**Who may do what.** ``owner`` is an organisation name. Anyone may ``create`` an asset and name
its owner organisation (the creator is recorded). Only identities of the owner organisation —
any role: client, admin, authority or node — may ``update``, ``transfer`` or ``delete`` it;
anyone else gets a 403 :class:`ContractError`, which the endorser refuses, so nothing is ordered.
The check reads ``stub.caller.org``, which the endorser took from the creator's certificate after
validating it against the channel's MSP; a contract never trusts an organisation named in its
arguments for this. A contract that wants a finer rule checks ``stub.caller.role`` the same way.

**Times.** ``created_after_ms``/``updated_after_ms`` are ``stub.last_block_time_ms``: the time of
the latest block the endorser had committed when it simulated the transaction (never a clock).
The transaction's own block is cut later, under execute-order-validate, so its time is not known
while the contract runs; block times never decrease, so the transaction committed *at or after*
this time (``chain tx`` shows its block, and the block header its exact time).

``put``/``get`` store raw bytes under ``kv/<key>`` with no read before the write (a blind write,
which never conflicts under MVCC): the benchmarks' workload; they have no owner.

``put_private``/``get_private``/``del_private`` keep a value in a private collection of the
channel config: the value comes in the proposal's transient map under ``"value"`` (so the
plaintext is in no block), and only the collection's member organisations' nodes store it.

Functions: create, update, transfer, delete, put, put_private, del_private (transactions); read,
list, history, get, get_private (queries).

This module is the lifecycle's example: ``secprivnode network init`` packages its source and the
genesis block installs it (:mod:`secprivnode.contracts.lifecycle`), so nodes run it in the
sandbox and never import it. It therefore imports only the contract API module and ``typing``
(no ``__all__``: dunder names are outside the sandbox). This contract keeps no state outside the
stub and never reads the clock.
"""

from __future__ import annotations

from typing import Any

from secprivnode.contracts.api import Contract, ContractError, EncodingError, Stub, decode, encode, query, transaction

ASSET_PREFIX = "asset/"
KV_PREFIX = "kv/"
# Assets returned by one ``list`` call: a page for a UI, not a dump of the ledger.
MAX_LIST = 1000
PRIVATE_VALUE = "value"  # the transient-map entry put_private takes its value from


def _str_arg(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ContractError(f"{what} must be a non-empty string")
    return value


class AssetsContract(Contract):
    name = "assets"
    version = "1.0"

    def _load(self, stub: Stub, asset_id: str) -> dict[str, Any]:
        asset = stub.get_value(ASSET_PREFIX + _str_arg(asset_id, "asset id"))
        if asset is None:
            raise ContractError(f"asset {asset_id!r} does not exist", 404)
        if not isinstance(asset, dict):
            raise ContractError(f"asset {asset_id!r} is not a record", 409)
        return asset

    def _load_owned(self, stub: Stub, asset_id: str, action: str) -> dict[str, Any]:
        """The asset, if the caller belongs to its owner organisation; 403 otherwise."""
        asset = self._load(stub, asset_id)
        if stub.caller.org != asset.get("owner"):
            raise ContractError(
                f"{stub.caller.id} may not {action} asset {asset_id!r}: "
                f"only identities of its owner organisation {asset.get('owner')!r} may",
                403,
            )
        return asset

    @transaction
    def create(self, stub: Stub, asset_id: str, owner: str, value: Any = None) -> bytes:
        key = ASSET_PREFIX + _str_arg(asset_id, "asset id")
        if stub.get_state(key) is not None:
            raise ContractError(f"asset {asset_id!r} already exists", 409)
        asset = {
            "id": asset_id,
            "owner": _str_arg(owner, "owner"),
            "value": value,
            "created_after_ms": stub.last_block_time_ms,
            "updated_after_ms": stub.last_block_time_ms,
            "creator": stub.caller.id,
        }
        stub.put_value(key, asset)
        stub.set_event("asset.created", encode({"id": asset_id, "owner": owner}))
        return encode(asset)

    @transaction
    def update(self, stub: Stub, asset_id: str, value: Any) -> bytes:
        asset = self._load_owned(stub, asset_id, "update")
        asset["value"] = value
        asset["updated_after_ms"] = stub.last_block_time_ms
        stub.put_value(ASSET_PREFIX + asset_id, asset)
        return encode(asset)

    @transaction
    def transfer(self, stub: Stub, asset_id: str, new_owner: str) -> bytes:
        asset = self._load_owned(stub, asset_id, "transfer")
        previous = asset.get("owner")
        asset["owner"] = _str_arg(new_owner, "new owner")
        asset["updated_after_ms"] = stub.last_block_time_ms
        stub.put_value(ASSET_PREFIX + asset_id, asset)
        stub.set_event("asset.transferred", encode({"id": asset_id, "from": previous, "to": new_owner}))
        return encode(asset)

    @transaction
    def delete(self, stub: Stub, asset_id: str) -> None:
        self._load_owned(stub, asset_id, "delete")
        stub.del_state(ASSET_PREFIX + asset_id)
        stub.set_event("asset.deleted", encode({"id": asset_id}))

    @query
    def read(self, stub: Stub, asset_id: str) -> bytes:
        return encode(self._load(stub, asset_id))

    @query
    def list(self, stub: Stub, start_id: str = "", end_id: str = "") -> bytes:
        """Assets with ``start_id <= id < end_id`` (``""``: unbounded), at most MAX_LIST."""
        if not isinstance(start_id, str) or not isinstance(end_id, str):
            raise ContractError("start and end ids must be strings")
        # "asset0" is the first key after every "asset/..." key ('0' follows '/' in ASCII).
        end = ASSET_PREFIX + end_id if end_id else ASSET_PREFIX[:-1] + "0"
        rows = stub.get_range(ASSET_PREFIX + start_id, end)
        if len(rows) > MAX_LIST:
            raise ContractError(f"more than {MAX_LIST} assets in range; narrow it", 413)
        return encode([k[len(ASSET_PREFIX) :] for k, _v in rows])

    @query
    def history(self, stub: Stub, asset_id: str) -> bytes:
        """The asset's committed history as the ledger reports it (canonical-encoded entries)."""
        entries = stub.get_history(ASSET_PREFIX + _str_arg(asset_id, "asset id"))
        return encode([_history_obj(e) for e in entries])

    @transaction
    def put(self, stub: Stub, key: str, value: bytes) -> None:
        """Blind write: no read, so concurrent puts never conflict (the last committed wins)."""
        if type(value) is not bytes:
            raise ContractError("value must be bytes")
        stub.put_state(KV_PREFIX + _str_arg(key, "key"), value)

    @query
    def get(self, stub: Stub, key: str) -> bytes:
        value = stub.get_state(KV_PREFIX + _str_arg(key, "key"))
        if value is None:
            raise ContractError(f"key {key!r} does not exist", 404)
        return value

    @transaction
    def put_private(self, stub: Stub, collection: str, key: str) -> None:
        """Store transient ``value`` privately under ``key`` in ``collection``."""
        value = stub.transient.get(PRIVATE_VALUE)
        if type(value) is not bytes:
            raise ContractError(f"put_private takes its value from the transient entry {PRIVATE_VALUE!r}")
        stub.put_private(_str_arg(collection, "collection"), _str_arg(key, "key"), value)

    @transaction
    def del_private(self, stub: Stub, collection: str, key: str) -> None:
        stub.del_private(_str_arg(collection, "collection"), _str_arg(key, "key"))

    @query
    def get_private(self, stub: Stub, collection: str, key: str) -> bytes:
        value = stub.get_private(_str_arg(collection, "collection"), _str_arg(key, "key"))
        if value is None:
            raise ContractError(f"private key {key!r} does not exist in {collection!r}", 404)
        return value


def _history_obj(entry: Any) -> dict[str, Any]:
    """A ledger history entry (storage.state.HistoryEntry) as a canonical map."""
    block, index = entry.version
    value = entry.value
    if value is not None:
        try:
            value = decode(value)
        except EncodingError:
            pass  # not an asset record (written by put): report the raw bytes
    return {"block": block, "tx": index, "tx_id": entry.tx_id, "deleted": entry.is_delete, "value": value}
