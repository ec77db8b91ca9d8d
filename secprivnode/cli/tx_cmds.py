"""``secprivnode tx``, ``chain`` and ``state``: invoke contracts and read the ledger of a network.

A node is addressed either by ``--url`` or by ``--dir`` (a local network directory) plus an
optional ``--node`` name; identities by ``--identity org/user`` inside that directory, or by
``--cert``/``--key`` files. ``state`` reads are signed with that identity.

For ``https://`` nodes the CLI verifies the node against ``--cacert`` (a PEM bundle), else against
the network directory's organisation CAs (``crypto/ca-bundle.pem``), and presents the identity as
its client certificate when the node requires mutual TLS.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from crypto.encoding import EncodingError, decode
from secprivnode.cli.options import network_dir_option
from secprivnode.client import ArgumentError, Client, ClientIdentity, ClientTLS, RpcError, TransportError
from secprivnode.network import CA_BUNDLE, NetworkError, NetworkNode, load_network

F = TypeVar("F", bound=Callable[..., Any])


def _target_options(fn: F) -> F:
    fn = network_dir_option(fn)
    fn = click.option("--node", "node_name", default=None, help="Node to talk to (default: the first).")(fn)
    fn = click.option("--url", default=None, help="JSON-RPC URL of a node (instead of --dir/--node).")(fn)
    fn = click.option("--channel", default=None, help="Channel (default: the node's default channel).")(fn)
    fn = click.option(
        "--cacert",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="PEM CA certificates to verify an https:// node with (default: the orgs' CAs in --dir).",
    )(fn)
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


def _tls_identity_options(fn: F) -> F:
    """--cert/--key for commands that sign nothing: the client certificate for mutual TLS."""
    help_ = "client certificate (and key) for nodes that require mutual TLS"
    fn = click.option("--cert", type=click.Path(dir_okay=False, path_type=Path), default=None, help=help_)(fn)
    fn = click.option("--key", type=click.Path(dir_okay=False, path_type=Path), default=None, help=help_)(fn)
    return fn


def _connecting(*, signs: bool) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Target options plus, for a command that ``signs`` (transactions, queries, reads), the
    identity options, else only --cert/--key for mutual TLS. The command gets, instead of them,
    ``connect()``: a client of the addressed node with that identity."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def command(
            directory: Path,
            node_name: str | None,
            url: str | None,
            channel: str | None,
            cacert: Path | None,
            cert: Path | None,
            key: Path | None,
            identity: str | None = None,
            **rest: Any,
        ) -> None:
            wanted = signs or cert is not None or key is not None
            ident = _identity(directory, identity, cert, key) if wanted else None
            fn(lambda: _client(directory, node_name, url, channel, cacert, ident), **rest)

        return _target_options((_identity_options if signs else _tls_identity_options)(command))

    return decorate


_with_identity = _connecting(signs=True)
_with_node = _connecting(signs=False)


def _call_options(fn: F) -> F:
    """--contract, --fn and --args: which contract function to call, with what."""
    fn = click.option(
        "--args", "raw_args", default="[]", show_default=True, help='JSON array of arguments; "0x…" strings are bytes.'
    )(fn)
    fn = click.option(
        "--transient",
        "transient",
        multiple=True,
        help="NAME=VALUE for the transient map (never ordered or stored); 0x… is hex, @path a file. Repeatable.",
    )(fn)
    fn = click.option("--fn", "function", required=True, help="Contract function.")(fn)
    fn = click.option("--contract", required=True, help="Contract name.")(fn)
    return fn


def _url(directory: Path, node_name: str | None, url: str | None) -> tuple[str, NetworkNode | None]:
    if url:
        return url, None
    try:
        _, nodes = load_network(directory)
    except NetworkError as exc:
        raise click.ClickException(str(exc)) from exc
    if node_name is None:
        return nodes[0].rpc_url, nodes[0]
    for n in nodes:
        if n.name == node_name:
            return n.rpc_url, n
    raise click.ClickException(f"no node {node_name!r} in {directory} (have: {', '.join(n.name for n in nodes)})")


def _client(
    directory: Path,
    node_name: str | None,
    url: str | None,
    channel: str | None,
    cacert: Path | None,
    ident: ClientIdentity | None = None,
) -> Client:
    """An SDK client of the addressed node, verifying an https:// node as the module docstring says."""
    address, tls = _target(directory, node_name, url, cacert, ident)
    try:
        return Client(address, ident, channel, tls=tls)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot set up TLS: {exc}") from exc


def _target(
    directory: Path, node_name: str | None, url: str | None, cacert: Path | None, ident: ClientIdentity | None
) -> tuple[str, ClientTLS | None]:
    """The addressed node's URL and what verifies it (None: plain HTTP)."""
    address, node = _url(directory, node_name, url)
    tls: ClientTLS | None = None
    try:
        if cacert is not None:
            tls = ClientTLS.from_files([cacert])
        elif node is not None:
            tls = node.client_tls()
        elif address.startswith("https://") and (directory / CA_BUNDLE).exists():
            tls = ClientTLS.from_files([directory / CA_BUNDLE])
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot load the CA certificates: {exc}") from exc
    if tls is not None:
        tls = tls.with_identity(ident)
    return address, tls


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


def _transient(items: tuple[str, ...]) -> dict[str, bytes]:
    """``--transient NAME=VALUE`` options as the proposal's transient map."""
    out: dict[str, bytes] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.ClickException(f"--transient: expected NAME=VALUE, got {item!r}")
        if value.startswith("@"):
            try:
                out[name] = Path(value[1:]).read_bytes()
            except OSError as exc:
                raise click.ClickException(f"--transient {name}: {exc}") from exc
        elif value.startswith("0x"):
            try:
                out[name] = bytes.fromhex(value[2:])
            except ValueError as exc:
                raise click.ClickException(f"--transient {name}: bad hex") from exc
        else:
            out[name] = value.encode("utf-8")
    return out


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
    @_with_identity
    @_call_options
    @click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the commit.")
    def invoke(
        connect: Callable[[], Client],
        contract: str,
        function: str,
        raw_args: str,
        transient: tuple[str, ...],
        wait: bool,
    ) -> None:
        """Submit a transaction; with --wait, print its block and validation code."""
        args = _args(raw_args)
        tmap = _transient(transient)
        with connect() as c:
            res = _run(lambda: c.invoke(contract, function, *args, transient=tmap, wait=wait))
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
    @_with_identity
    @_call_options
    def query(
        connect: Callable[[], Client], contract: str, function: str, raw_args: str, transient: tuple[str, ...]
    ) -> None:
        """Run a query function on one node's committed state; nothing is ordered."""
        args = _args(raw_args)
        tmap = _transient(transient)
        with connect() as c:
            _show(_decoded(_run(lambda: c.query(contract, function, *args, transient=tmap))))

    @cli.group("chain")
    def chain_group() -> None:
        """Read blocks and transactions."""

    @chain_group.command("height")
    @_with_node
    def height(connect: Callable[[], Client]) -> None:
        """Number of blocks on the node's chain."""
        with connect() as c:
            click.echo(_run(c.height))

    # "-1" must reach NUMBER as an argument, not be taken for an unknown option.
    @chain_group.command("block", context_settings={"ignore_unknown_options": True})
    @_with_node
    @click.argument("number", type=int)
    def block(connect: Callable[[], Client], number: int) -> None:
        """Show block NUMBER; a negative NUMBER counts back from the tip (-1 is the latest block)."""
        with connect() as c:
            if number < 0:
                height = _run(c.height)
                if height + number < 0:
                    raise click.ClickException(f"block {number}: the chain has only {height} blocks")
                number += height
            _show(_run(lambda: c.get_block(number)))

    @chain_group.command("contracts")
    @_with_node
    @click.option("--json", "as_json", is_flag=True, help="Print the node's contract_list answer as JSON.")
    def contracts(connect: Callable[[], Client], as_json: bool) -> None:
        """List the channel's contracts (definition and policy) and their functions on the node."""
        with connect() as c:
            listed = _run(c.contracts)
        if as_json:
            _show(listed)
            return
        for item in listed:
            where = f"installed {item['installed']}" if item.get("installed") else "NOT installed on this node"
            click.echo(f"{item['name']} {item['version']} ({where}); endorsement policy {item['policy']}")
            for f in item.get("functions", ()):
                click.echo(f"  {f['kind']:<11} {f['name']}({', '.join(f['params'])})")

    @chain_group.command("tx")
    @_with_node
    @click.argument("tx_id")
    def tx(connect: Callable[[], Client], tx_id: str) -> None:
        """Show transaction TX_ID (hex) with its block and validation code."""
        try:
            raw = bytes.fromhex(tx_id.removeprefix("0x"))
        except ValueError as exc:
            raise click.ClickException("TX_ID must be hex") from exc
        with connect() as c:
            _show(_run(lambda: c.get_tx(raw)))

    @cli.group("state")
    def state_group() -> None:
        """Read a contract's committed state directly (signed reads, checked by the read policy)."""

    contract = click.option("--contract", required=True, help="Contract (state namespace).")
    limit = click.option(
        "--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Most rows to return."
    )

    @state_group.command("get")
    @_with_identity
    @contract
    @click.argument("state_key", metavar="KEY")
    def state_get(connect: Callable[[], Client], contract: str, state_key: str) -> None:
        """Print KEY's committed value and version (null if absent)."""
        with connect() as c:
            _show(_run(lambda: c.state_get(contract, state_key)))

    @state_group.command("range")
    @_with_identity
    @contract
    @click.option("--start", default="", help="First key (inclusive); empty for the first key.")
    @click.option("--end", default="", help="Last key (exclusive); empty for no bound.")
    @limit
    def state_range(connect: Callable[[], Client], contract: str, start: str, end: str, limit: int) -> None:
        """Print the committed keys in [start, end) with values and versions."""
        with connect() as c:
            _show(_run(lambda: c.state_get_range(contract, start, end, limit)))

    @state_group.command("history")
    @_with_identity
    @contract
    @click.argument("state_key", metavar="KEY")
    @limit
    def state_history(connect: Callable[[], Client], contract: str, state_key: str, limit: int) -> None:
        """Print KEY's committed history, newest first."""
        with connect() as c:
            _show(_run(lambda: c.state_get_history(contract, state_key, limit)))
