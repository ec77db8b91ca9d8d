"""``secprivnode contract``: the contract lifecycle — package, approve, commit, list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from secprivnode.cli.options import network_dir_option


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def register(cli: click.Group) -> None:
    @cli.group("contract")
    def contract_group() -> None:
        """Contract lifecycle: package code, approve it per organisation, commit its definition."""

    @contract_group.command("package")
    @click.argument("source", type=click.Path(exists=True, path_type=Path))
    @click.option("--name", required=True, help="Contract name (its state namespace).")
    @click.option("--version", "version", required=True, help="Contract version, e.g. 1.0.")
    @click.option("--policy", required=True, help='Endorsement policy, e.g. "MAJORITY(node)".')
    @click.option(
        "--out",
        "out",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="The package file to write.",
    )
    def package(source: Path, name: str, version: str, policy: str, out: Path) -> None:
        """Build a package from a .py file or a directory of .py files (contract.py is the entry).

        The code is checked against the sandbox rules; the same sources always give the same bytes.
        """
        from secprivnode.contracts.package import PackageError, build_package
        from secprivnode.contracts.sandbox import SandboxError, check_package

        try:
            pkg = build_package(source, name=name, version=version, policy=policy)
            check_package(pkg)
        except (PackageError, SandboxError, OSError) as exc:
            raise _fail(exc) from exc
        out.write_bytes(pkg.file_bytes())
        click.echo(f"{out}: {name} {version}, {len(pkg.files)} module(s), package hash {pkg.hash.hex()}")

    @contract_group.command("approve")
    @network_dir_option
    @click.argument("package_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--org", "orgs", multiple=True, help="Approving organisation (repeatable; default: every org).")
    def approve(directory: Path, package_file: Path, orgs: tuple[str, ...]) -> None:
        """Approve a package as the next definition of its contract, signed by each org's admin."""
        from secprivnode.contract_admin import approve as do_approve
        from secprivnode.network import NetworkError

        try:
            approvals, notes = do_approve(directory, package_file, list(orgs))
        except (NetworkError, OSError, ValueError) as exc:
            raise _fail(exc) from exc
        for note in notes:
            click.echo(note)
        pkg = approvals.package
        click.echo(
            f"{pkg.name} {pkg.version} (package {pkg.hash.hex()}) approved by {', '.join(approvals.approvers())} "
            f"for config sequence {approvals.config.sequence}"
        )

    @contract_group.command("commit")
    @network_dir_option
    @click.option("--name", required=True, help="Contract whose approved definition to commit.")
    def commit(directory: Path, name: str) -> None:
        """Commit the approved definition: a config update carrying the package code."""
        from secprivnode.contract_admin import commit as do_commit
        from secprivnode.network import NetworkError

        try:
            approvals, result = do_commit(directory, name)
        except (NetworkError, OSError, ValueError) as exc:
            raise _fail(exc) from exc
        d = approvals.config.contract(name)
        assert d is not None
        click.echo(
            f"committed {name} {d.version} (definition sequence {d.sequence}, package {d.package_hash.hex()}) "
            f"in block {result.get('block_number')}"
        )

    @contract_group.command("list")
    @network_dir_option
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def list_cmd(directory: Path, as_json: bool) -> None:
        """Contract definitions on the channel, and approvals waiting for a commit."""
        from secprivnode.contract_admin import pending_approvals
        from secprivnode.network import NetworkError, load_network, rpc_call

        try:
            _, nodes = load_network(directory)
            node = nodes[0]
            committed: list[dict[str, Any]] = rpc_call(node.rpc_url, "contract_list", context=node.ssl_context())
            pending: list[dict[str, Any]] = [
                {
                    "name": a.package.name,
                    "version": a.package.version,
                    "package_hash": a.package.hash.hex(),
                    "config_sequence": a.config.sequence,
                    "approvals": a.approvers(),
                }
                for a in pending_approvals(directory)
            ]
        except (NetworkError, OSError, ValueError) as exc:
            raise _fail(exc) from exc
        if as_json:
            click.echo(json.dumps({"committed": committed, "pending": pending}, indent=2))
            return
        for c in committed:
            h = (c.get("package_hash") or "built-in").removeprefix("0x")
            click.echo(
                f"{c['name']} {c['version']} seq {c['sequence']} package {h} policy {c['policy']} "
                f"approved by {', '.join(c['approvals']) or '-'}"
            )
        for p in pending:
            click.echo(
                f"pending: {p['name']} {p['version']} package {p['package_hash']} for config sequence "
                f"{p['config_sequence']}, approved by {', '.join(p['approvals']) or '-'}"
            )
