"""``secprivnode crypto`` and ``secprivnode ca``: PKI material for a network.

A thin shell over :mod:`crypto.ca`: parse options, call it with the current time, print a
summary. User mistakes become :class:`click.ClickException` (one line, exit code 1).
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from crypto.ca import CertificateAuthority, Role, default_org_names, generate_network, write_identity


def _now() -> int:
    return int(time.time())


def _split_names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [n.strip() for n in value.split(",") if n.strip()]


def _load_ca(ca_dir: Path) -> CertificateAuthority:
    try:
        return CertificateAuthority.load(ca_dir)
    except ValueError as exc:
        raise click.ClickException(f"cannot load CA from {ca_dir}: {exc}") from exc


def register(cli: click.Group) -> None:
    @cli.group("crypto")
    def crypto_group() -> None:
        """Generate cryptographic material."""

    @crypto_group.command("generate")
    @click.option("--orgs", "n_orgs", type=click.IntRange(1), default=3, show_default=True, help="Organisations.")
    @click.option("--nodes-per-org", type=click.IntRange(1), default=1, show_default=True, help="Nodes per org.")
    @click.option("--clients", type=click.IntRange(0), default=1, show_default=True, help="Client users per org.")
    @click.option("--org-names", default=None, help="Comma-separated org names (default council,transport,...).")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output directory.")
    def generate(n_orgs: int, nodes_per_org: int, clients: int, org_names: str | None, out: Path) -> None:
        """Write a complete PKI for a local network (PEM files, ECDSA P-256).

        \b
        Layout, for each organisation <org>:
          OUT/<org>/ca/ca.pem, ca-key.pem, crl.pem      root CA, its key, its (empty) CRL
          OUT/<org>/nodes/<org>-node<i>/cert.pem, key.pem
                                                        node identity, i = 1..M; SAN localhost and
                                                        127.0.0.1; serverAuth + clientAuth (mutual TLS)
          OUT/<org>/users/admin/cert.pem, key.pem       org admin
          OUT/<org>/users/authority/cert.pem, key.pem   authority (manages user records)
          OUT/<org>/users/client<j>/cert.pem, key.pem   clients, j = 1..K

        Default org names: council, transport, health, utilities, education, then org6, org7, ...
        Existing org directories are never overwritten.
        """
        names = _split_names(org_names)
        if names is None:
            names = default_org_names(n_orgs)
        elif len(names) != n_orgs:
            raise click.ClickException(f"--org-names lists {len(names)} names but --orgs is {n_orgs}")
        try:
            summary = generate_network(out, names, nodes_per_org, clients, now=_now())
        except (ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
        for org, identities in summary.items():
            click.echo(f"{org}: CA + {len(identities)} identities ({', '.join(identities)})")
        click.echo(f"wrote PKI for {len(summary)} organisations to {out}")

    @cli.group("ca")
    def ca_group() -> None:
        """Operate one organisation's certificate authority."""

    @ca_group.command("issue")
    @click.option("--ca-dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="DIR/<org>/ca")
    @click.option("--name", required=True, help="Identity name (the certificate CN).")
    @click.option("--role", type=click.Choice([r.value for r in Role]), required=True, help="Identity role (OU).")
    @click.option("--host", "hosts", multiple=True, help="subjectAltName DNS entry (repeatable).")
    @click.option("--ip", "ips", multiple=True, help="subjectAltName IP entry (repeatable).")
    @click.option(
        "--valid-days", type=click.IntRange(1, 3650), default=825, show_default=True, help="Certificate lifetime."
    )
    @click.option(
        "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Writes cert.pem, key.pem."
    )
    def issue(
        ca_dir: Path, name: str, role: str, hosts: tuple[str, ...], ips: tuple[str, ...], valid_days: int, out: Path
    ) -> None:
        """Issue a certificate and key signed by the CA in --ca-dir."""
        ca = _load_ca(ca_dir)
        try:
            key, pem = ca.issue(name, Role(role), now=_now(), hosts=hosts, ips=ips, valid_days=valid_days)
            write_identity(out, key, pem)
        except (ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"issued {ca.org}/{name} ({role}) -> {out / 'cert.pem'}")

    @ca_group.command("revoke")
    @click.option("--ca-dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="DIR/<org>/ca")
    @click.option(
        "--cert",
        "cert_path",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="The certificate (PEM) to revoke.",
    )
    def revoke(ca_dir: Path, cert_path: Path) -> None:
        """Revoke a certificate issued by the CA in --ca-dir and rewrite its crl.pem."""
        ca = _load_ca(ca_dir)
        try:
            serial, _ = ca.revoke_certificate(cert_path.read_bytes(), now=_now())
            ca.save(ca_dir)
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror}: {exc.filename}") from exc
        except ValueError as exc:
            raise click.ClickException(f"{cert_path}: {exc}") from exc
        click.echo(f"revoked serial {serial:x} of {ca.org}; CRL now lists {len(ca.revoked)} certificate(s)")
