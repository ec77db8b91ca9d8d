"""``secprivnode ledger``: offline inspection of a node's ledger.

``ledger verify --data DIR`` opens ``DIR/ledger`` (the node's LevelDB directory), runs the
open-time recovery checks and then walks every block of every channel (or of ``--channel``):
checksums, hash links, Merkle roots, indices and the signature on every header. It prints one line
per channel and exits 1 naming the first bad height. Run it on a stopped node: LevelDB allows one
process per database, and on a running node's directory the command says so and exits 1.

This command never writes ledger data (opening stamps the format key only on an empty database).
"""

from __future__ import annotations

from pathlib import Path

import click

from crypto.msp import Identity, MalformedCertificate
from crypto.signing import PublicKey
from storage.errors import DatabaseLocked, StorageError
from storage.kv import Database
from storage.ledger import ChannelLedger, list_channels

LEDGER_DIR = "ledger"  # <data_dir>/ledger holds the node's LevelDB database


def signer_key(cert_der: bytes) -> PublicKey | None:
    """The public key in a block signer's certificate; None if it is not a usable certificate.

    This proves each header was signed by the holder of that certificate; whether the certificate
    belongs to an orderer of the channel is checked by the MSP when the block is validated.
    """
    try:
        return Identity.from_cert(cert_der).public_key
    except MalformedCertificate:
        return None


def _verify_channel(db: Database, channel: str, signatures: bool) -> tuple[bool, str]:
    try:
        ledger = ChannelLedger(db, channel)
        ledger.verify_chain(signer_key if signatures else None)
    except StorageError as exc:
        where = f"block {exc.height}" if exc.height is not None else "the ledger"
        return False, f"channel {channel}: FAILED at {where}: {type(exc).__name__}: {exc}"
    tip = ledger.tip_hash.hex()[:16] if ledger.tip_hash else "-"
    txs = sum(len(ledger.get_codes(n)) for n in range(ledger.height))
    return True, f"channel {channel}: OK, {ledger.height} blocks, {txs} transactions, tip {tip}"


def register(cli: click.Group) -> None:
    @cli.group("ledger")
    def ledger_group() -> None:
        """Inspect a node's ledger."""

    @ledger_group.command("verify")
    @click.option(
        "--data",
        "data_dir",
        required=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="The node's data directory (its LevelDB database is DATA/ledger).",
    )
    @click.option("--channel", default=None, help="Verify only this channel (default: every channel).")
    @click.option(
        "--signatures/--no-signatures", default=True, show_default=True, help="Check the signature on every header."
    )
    def verify_cmd(data_dir: Path, channel: str | None, signatures: bool) -> None:
        """Walk the chain: checksums, hash links, Merkle roots, indices, header signatures."""
        path = data_dir / LEDGER_DIR
        if not path.is_dir():
            raise click.ClickException(f"no ledger database at {path}")
        try:
            db = Database(path, create=False)
        except DatabaseLocked as exc:
            raise click.ClickException(
                f"{data_dir} belongs to a running node ({exc}). ledger verify reads the database "
                "directly and needs the node stopped: `secprivnode network down --dir DIR` (or SIGTERM "
                "the node), then run it again. A running node's chain can be read over JSON-RPC "
                "(`secprivnode chain block N`, chain_getTxProof)."
            ) from exc
        except StorageError as exc:
            raise click.ClickException(f"cannot open {path}: {exc}") from exc
        with db:
            try:
                channels = [channel] if channel else list_channels(db)
            except StorageError as exc:
                raise click.ClickException(str(exc)) from exc
            if not channels:
                click.echo(f"{path}: no channels")
                return
            ok = True
            for ch in channels:
                good, line = _verify_channel(db, ch, signatures)
                ok = ok and good
                click.echo(line)
        if not ok:
            raise SystemExit(1)
