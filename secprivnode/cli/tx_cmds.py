"""``secprivnode tx`` and ``secprivnode chain``: invoke contracts and read the ledger of a network.

A node is addressed either by ``--url`` or by ``--dir`` (a local network directory) plus an
optional ``--node`` name; identities by ``--identity org/user`` inside that directory, or by
``--cert``/``--key`` files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from crypto.encoding import EncodingError, decode
from secprivnode.cli.options import network_dir_option
from secprivnode.client import ArgumentError, Client, ClientIdentity, RpcError, TransportError
from secprivnode.network import NetworkError, load_network

F = TypeVar("F", bound=Callable[..., Any])


def _target_options(fn: F) -> F:
    fn = network_dir_option(fn)
    fn = click.option("--node", "node_name", default=None, help="Node to talk to (default: the first).")(fn)
    fn = click.option("--url", default=None, help="JSON-RPC URL of a node (instead of --dir/--node).")(fn)
    fn = click.option("--channel", default=None, help="Channel (default: the node's default channel).")(fn)
    return fn


def _identity_options(fn: F) -> F:
    fn = click.option("--identity", default=None, help="org/user inside --dir (default: first org's client1).")(fn)
    fn = click.option(
        "--cert",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Client certificate (PEM) instead of --identity; with --key.",
    )(fn)
    fn = click.option(
        "--key", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Private key (PEM) of --cert."
    )(fn)
    return fn


def _call_options(fn: F) -> F:
    """--contract, --fn and --args: which contract function to call, with what."""
    fn = click.option(
        "--args", "raw_args", default="[]", show_default=True, help='JSON array of arguments; "0x…" strings are bytes.'
    )(fn)
    fn = click.option("--fn", "function", required=True, help="Contract function.")(fn)
    fn = click.option("--contract", required=True, help="Contract name.")(fn)
    return fn


def _url(directory: Path, node_name: str | None, url: str | None) -> str:
    if url:
        return url
    try:
        _, nodes = load_network(directory)
    except NetworkError as exc:
        raise click.ClickException(str(exc)) from exc
    if node_name is None:
        return nodes[0].rpc_url
    for n in nodes:
        if n.name == node_name:
            return n.rpc_url
    raise click.ClickException(f"no node {node_name!r} in {directory} (have: {', '.join(n.name for n in nodes)})")


def _identity(directory: Path, identity: str | None, cert: Path | None, key: Path | None) -> ClientIdentity:
    if cert or key:
        if not (cert and key):
            raise click.ClickException("--cert and --key go together")
        cert_path, key_path = cert, key
    else:
        if identity is None:
            try:
                _, nodes = load_network(directory)
            except NetworkError as exc:
                raise click.ClickException(str(exc)) from exc
            identity = f"{nodes[0].org}/client1"
        org, sep, user = identity.partition("/")
        if not sep or not org or not user:
            raise click.ClickException(f"--identity: expected org/user, got {identity!r}")
        base = directory / "crypto" / org / "users" / user
        cert_path, key_path = base / "cert.pem", base / "key.pem"
    try:
        return ClientIdentity.load(cert_path, key_path)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot load identity: {exc}") from exc


def _from_json(v: Any) -> Any:
    """JSON to contract values: "0x…" strings are bytes (as at the RPC edge)."""
    if isinstance(v, str) and v.startswith("0x"):
        try:
            return bytes.fromhex(v[2:])
        except ValueError:
            return v
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    if isinstance(v, dict):
        return {k: _from_json(x) for k, x in v.items()}
    return v


def _args(raw: str) -> list[Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"--args: invalid JSON: {exc}") from exc
    if not isinstance(value, list):
        raise click.ClickException('--args: expected a JSON array, e.g. \'["asset1", "red"]\'')
    return [_from_json(v) for v in value]


def _show(value: Any) -> None:
    def enc(o: Any) -> Any:
        if isinstance(o, bytes):
            try:
                return o.decode()
            except UnicodeDecodeError:
                return "0x" + o.hex()
        raise TypeError(type(o).__name__)

    click.echo(json.dumps(value, indent=2, default=enc))


def _decoded(response: Any) -> Any:
    """Add ``value``: the payload decoded when it is canonical encoding (as the sample contracts return)."""
    if isinstance(response, dict) and isinstance(response.get("payload"), bytes) and response["payload"]:
        try:
            return {**response, "value": decode(response["payload"])}
        except EncodingError:
            return response
    return response


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except RpcError as exc:
        raise click.ClickException(f"node refused: {exc}") from exc
    except ArgumentError as exc:
        raise click.ClickException(str(exc)) from exc
    except (TransportError, OSError) as exc:
        raise click.ClickException(f"cannot reach the node: {exc}") from exc


def register(cli: click.Group) -> None:
    @cli.group("tx")
    def tx_group() -> None:
        """Invoke and query contracts."""

    @tx_group.command("invoke")
    @_target_options
    @_identity_options
    @_call_options
    @click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the commit.")
    def invoke(
        directory: Path,
        node_name: str | None,
        url: str | None,
        channel: str | None,
        identity: str | None,
        cert: Path | None,
        key: Path | None,
        contract: str,
        function: str,
        raw_args: str,
        wait: bool,
    ) -> None:
        """Submit a transaction; with --wait, print its block and validation code."""
        args = _args(raw_args)
        ident = _identity(directory, identity, cert, key)
        with Client(_url(directory, node_name, url), ident, channel) as c:
            res = _run(lambda: c.invoke(contract, function, *args, wait=wait))
        out = {
            "tx_id": "0x" + res.tx_id.hex(),  # the form chain block / chain tx / JSON-RPC use
            "block": res.block_number,
            "code": res.code,
            "response": _decoded(res.response),
        }
        _show(out)
        if wait and res.code != "VALID":
            raise SystemExit(2)

    @tx_group.command("query")
    @_target_options
    @_identity_options
    @_call_options
    def query(
        directory: Path,
        node_name: str | None,
        url: str | None,
        channel: str | None,
        identity: str | None,
        cert: Path | None,
        key: Path | None,
        contract: str,
        function: str,
        raw_args: str,
    ) -> None:
        """Run a query function on one node's committed state; nothing is ordered."""
        args = _args(raw_args)
        ident = _identity(directory, identity, cert, key)
        with Client(_url(directory, node_name, url), ident, channel) as c:
            _show(_decoded(_run(lambda: c.query(contract, function, *args))))

    @cli.group("chain")
    def chain_group() -> None:
        """Read blocks and transactions."""

    @chain_group.command("height")
    @_target_options
    def height(directory: Path, node_name: str | None, url: str | None, channel: str | None) -> None:
        """Number of blocks on the node's chain."""
        with Client(_url(directory, node_name, url), None, channel) as c:
            click.echo(_run(c.height))

    # "-1" must reach NUMBER as an argument, not be taken for an unknown option.
    @chain_group.command("block", context_settings={"ignore_unknown_options": True})
    @_target_options
    @click.argument("number", type=int)
    def block(directory: Path, node_name: str | None, url: str | None, channel: str | None, number: int) -> None:
        """Show block NUMBER; a negative NUMBER counts back from the tip (-1 is the latest block)."""
        with Client(_url(directory, node_name, url), None, channel) as c:
            if number < 0:
                height = _run(c.height)
                if height + number < 0:
                    raise click.ClickException(f"block {number}: the chain has only {height} blocks")
                number += height
            _show(_run(lambda: c.get_block(number)))

    @chain_group.command("contracts")
    @_target_options
    @click.option("--json", "as_json", is_flag=True, help="Print the node's contract_list answer as JSON.")
    def contracts(directory: Path, node_name: str | None, url: str | None, channel: str | None, as_json: bool) -> None:
        """List the channel's contracts (definition and policy) and their functions on the node."""
        with Client(_url(directory, node_name, url), None, channel) as c:
            listed = _run(lambda: c.call("contract_list", {"channel": channel} if channel else {}))
        if as_json:
            _show(listed)
            return
        for item in listed:
            where = f"installed {item['installed']}" if item.get("installed") else "NOT installed on this node"
            click.echo(f"{item['name']} {item['version']} ({where}); endorsement policy {item['policy']}")
            for f in item.get("functions", ()):
                click.echo(f"  {f['kind']:<11} {f['name']}({', '.join(f['params'])})")

    @chain_group.command("tx")
    @_target_options
    @click.argument("tx_id")
    def tx(directory: Path, node_name: str | None, url: str | None, channel: str | None, tx_id: str) -> None:
        """Show transaction TX_ID (hex) with its block and validation code."""
        try:
            raw = bytes.fromhex(tx_id.removeprefix("0x"))
        except ValueError as exc:
            raise click.ClickException("TX_ID must be hex") from exc
        with Client(_url(directory, node_name, url), None, channel) as c:
            _show(_run(lambda: c.get_tx(raw)))
