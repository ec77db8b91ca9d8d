"""``secprivnode blob put|get|headers``: blobs of private collections over HTTP, streamed.

``put`` uploads a file and prints its SHA-256 and size; ``get`` downloads one into a file after
checking its hash; ``headers`` prints the signed headers of one request for use with curl.
Nodes and identities are chosen as for ``secprivnode tx`` (``--dir``/``--node`` or ``--url``;
``--identity org/user`` or ``--cert``/``--key``).
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from secprivnode.blobclient import BlobClientError, file_sha256, get_blob, put_blob, sign_request
from secprivnode.cli.tx_cmds import _identity, _identity_options, _target, _target_options
from secprivnode.client import ClientIdentity
from secprivnode.network import NetworkError, rpc_call


@dataclass(frozen=True)
class _Target:
    """The addressed node, how to verify it, the channel and the signing identity of a command."""

    url: str
    context: ssl.SSLContext | None
    channel: str
    identity: ClientIdentity


def _with_target(fn: Callable[..., None]) -> Callable[..., None]:
    """Target and identity options, given to the command as one ``target: _Target``."""

    @functools.wraps(fn)
    def command(
        directory: Path,
        node_name: str | None,
        url: str | None,
        channel: str | None,
        cacert: Path | None,
        identity: str | None,
        cert: Path | None,
        key: Path | None,
        **rest: Any,
    ) -> None:
        ident = _identity(directory, identity, cert, key)
        address, tls = _target(directory, node_name, url, cacert, ident)
        try:
            ctx = None if tls is None else tls.context()
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise click.ClickException(f"cannot set up TLS: {exc}") from exc
        fn(_Target(address, ctx, _channel(address, channel, ctx), ident), **rest)

    return _target_options(_identity_options(command))


def _channel(url: str, channel: str | None, context: ssl.SSLContext | None) -> str:
    if channel:
        return channel
    try:
        return str(rpc_call(url, "node_status", context=context)["default_channel"])
    except (NetworkError, OSError, KeyError, ValueError) as exc:
        raise click.ClickException(f"cannot ask {url} for its default channel: {exc}") from exc


def _hash_arg(value: str) -> bytes:
    v = value.removeprefix("0x")
    try:
        raw = bytes.fromhex(v)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise click.BadParameter("expected the 64 hex digits of a SHA-256")
    return raw


def _echo(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(answer, sort_keys=True))
    else:
        click.echo(f"{answer['sha256']}  {answer['size']}")


collection_option = click.option("--collection", required=True, help="contract/collection, e.g. assets/shared.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")


def register(cli: click.Group) -> None:
    @cli.group("blob")
    def blob_group() -> None:
        """Blobs of private collections: streamed upload and download over HTTP."""

    @blob_group.command("put")
    @_with_target
    @collection_option
    @json_option
    @click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
    def put(target: _Target, collection: str, as_json: bool, file: Path) -> None:
        """Upload FILE as a blob of --collection; print its SHA-256 and size."""
        t = target
        try:
            answer = put_blob(t.url, t.identity, file, t.channel, collection, context=t.context)
        except (BlobClientError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        _echo(answer, as_json)

    @blob_group.command("get")
    @_with_target
    @collection_option
    @json_option
    @click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Write here.")
    @click.argument("sha256")
    def get(target: _Target, collection: str, as_json: bool, out: Path, sha256: str) -> None:
        """Download blob SHA256 of --collection into --out (checked against its hash)."""
        digest, t = _hash_arg(sha256), target
        try:
            size = get_blob(t.url, t.identity, digest, out, t.channel, collection, context=t.context)
        except (BlobClientError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        answer = {"sha256": digest.hex(), "size": size, "channel": t.channel, "collection": collection}
        _echo({**answer, "path": str(out)}, as_json)

    @blob_group.command("headers")
    @_with_target
    @collection_option
    @click.option(
        "--method", type=click.Choice(["PUT", "GET"]), required=True, help="The HTTP request to sign headers for."
    )
    @click.option(
        "--file",
        "file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="For PUT: the blob to upload.",
    )
    @click.option("--sha256", "sha256", default=None, help="For GET: the blob's SHA-256.")
    def headers(target: _Target, collection: str, method: str, file: Path | None, sha256: str | None) -> None:
        """Print curl -H options for one signed request (PUT: --file; GET: --sha256)."""
        if method == "PUT":
            if file is None:
                raise click.UsageError("PUT needs --file")
            digest, size = file_sha256(file)
        else:
            if sha256 is None:
                raise click.UsageError("GET needs --sha256")
            digest, size = _hash_arg(sha256), 0
        try:
            hs = sign_request(target.identity, method, target.channel, collection, digest, size)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(" ".join(f"-H '{k}: {v}'" for k, v in hs.items()))
        click.echo(f"# {target.url.rstrip('/')}/blobs/{digest.hex()}")
