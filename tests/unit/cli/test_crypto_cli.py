"""``secprivnode crypto generate`` and ``secprivnode ca issue|revoke`` against openssl and the MSP."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from crypto.msp import MSP, OrgMSP, Revoked, Role, WrongRole
from secprivnode.cli.main import cli

OPENSSL = shutil.which("openssl")


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    return result.output


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    text = run("crypto", "generate", "--orgs", "2", "--nodes-per-org", "2", "--clients", "2", "--out", str(out))
    assert "council" in text and "transport" in text
    return out


def test_layout(pki: Path) -> None:
    for org in ("council", "transport"):
        assert sorted(p.name for p in (pki / org / "ca").iterdir()) == ["ca-key.pem", "ca.pem", "crl.pem"]
        assert sorted(p.name for p in (pki / org / "nodes").iterdir()) == [f"{org}-node1", f"{org}-node2"]
        assert sorted(p.name for p in (pki / org / "users").iterdir()) == ["admin", "authority", "client1", "client2"]
        for ident in [*(pki / org / "nodes").iterdir(), *(pki / org / "users").iterdir()]:
            assert {p.name for p in ident.iterdir()} == {"cert.pem", "key.pem"}
            assert (ident / "key.pem").stat().st_mode & 0o777 == 0o600


def test_msp_accepts_generated_identities(pki: Path) -> None:
    msp = MSP([OrgMSP.from_dir(pki / "council"), OrgMSP.from_dir(pki / "transport")])
    now = int(time.time())
    node = msp.validate((pki / "transport/nodes/transport-node2/cert.pem").read_bytes(), now=now, roles={Role.NODE})
    assert node.id == "transport/transport-node2"
    assert msp.validate((pki / "council/users/authority/cert.pem").read_bytes(), now=now).role is Role.AUTHORITY
    with pytest.raises(WrongRole):
        msp.validate((pki / "council/users/client1/cert.pem").read_bytes(), now=now, roles={Role.ADMIN})


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_openssl_verifies_node_cert(pki: Path) -> None:
    ca = pki / "council/ca/ca.pem"
    for cert in ("nodes/council-node1/cert.pem", "users/admin/cert.pem"):
        res = openssl("verify", "-CAfile", str(ca), str(pki / "council" / cert))
        assert res.returncode == 0 and ": OK" in res.stdout, res.stdout + res.stderr
    res = openssl("verify", "-CAfile", str(ca), str(pki / "transport/nodes/transport-node1/cert.pem"))
    assert res.returncode != 0  # another org's CA does not vouch for it
    text = openssl("x509", "-in", str(pki / "council/nodes/council-node1/cert.pem"), "-noout", "-text").stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text


def test_issue_and_revoke(tmp_path: Path) -> None:
    run("crypto", "generate", "--orgs", "1", "--org-names", "health", "--clients", "0", "--out", str(tmp_path))
    ca_dir = tmp_path / "health/ca"
    out = tmp_path / "issued/scanner7"
    text = run("ca", "issue", "--ca-dir", str(ca_dir), "--name", "scanner7", "--role", "client", "--out", str(out))
    assert "health/scanner7" in text
    cert = (out / "cert.pem").read_bytes()
    msp = MSP([OrgMSP.from_dir(tmp_path / "health")])
    serial = msp.validate(cert, now=int(time.time())).serial
    text = run("ca", "revoke", "--ca-dir", str(ca_dir), "--cert", str(out / "cert.pem"))
    assert f"{serial:x}" in text
    msp2 = MSP([OrgMSP.from_dir(ca_dir)])
    with pytest.raises(Revoked):
        msp2.validate(cert, now=int(time.time()))
    node = (tmp_path / "health/nodes/health-node1/cert.pem").read_bytes()
    assert msp2.validate(node, now=int(time.time())).role is Role.NODE
    # revoke a second one: the CA's revoked list on disk keeps the first
    run("ca", "revoke", "--ca-dir", str(ca_dir), "--cert", str(tmp_path / "health/users/admin/cert.pem"))
    with pytest.raises(Revoked):
        MSP([OrgMSP.from_dir(ca_dir)]).validate(cert, now=int(time.time()))
    if OPENSSL is not None:
        res = openssl("crl", "-in", str(ca_dir / "crl.pem"), "-noout", "-text")
        assert res.returncode == 0, res.stderr
        listed = [int(h, 16) for h in re.findall(r"Serial Number: ([0-9A-F]+)", res.stdout)]
        assert len(listed) == 2 and serial in listed
        res = openssl("crl", "-in", str(ca_dir / "crl.pem"), "-CAfile", str(ca_dir / "ca.pem"), "-noout")
        assert res.returncode == 0 and "verify OK" in (res.stdout + res.stderr)


def test_issue_node_with_sans(tmp_path: Path) -> None:
    run("crypto", "generate", "--orgs", "1", "--clients", "0", "--out", str(tmp_path))
    out = tmp_path / "n9"
    run("ca", "issue", "--ca-dir", str(tmp_path / "council/ca"), "--name", "n9", "--role", "node",
        "--host", "n9.city.local", "--host", "localhost", "--ip", "10.1.2.3", "--out", str(out))  # fmt: skip
    from cryptography import x509

    san = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["n9.city.local", "localhost"]
    assert [str(i) for i in san.value.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]


def test_default_org_names_and_many_orgs(tmp_path: Path) -> None:
    run("crypto", "generate", "--orgs", "6", "--clients", "0", "--out", str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["council", "transport", "health", "utilities", "education", "org6"]
    )


def test_user_mistakes(tmp_path: Path) -> None:
    run("crypto", "generate", "--orgs", "1", "--clients", "0", "--out", str(tmp_path / "pki"))
    ca_dir = str(tmp_path / "pki/council/ca")
    assert "already exists" in fails("crypto", "generate", "--orgs", "1", "--out", str(tmp_path / "pki"))
    assert "--org-names" in fails("crypto", "generate", "--orgs", "2", "--org-names", "a", "--out", str(tmp_path))
    assert "bad org name" in fails("crypto", "generate", "--orgs", "1", "--org-names", "a/b", "--out", str(tmp_path))
    fails("crypto", "generate", "--orgs", "0", "--out", str(tmp_path))
    missing = fails("ca", "issue", "--ca-dir", str(tmp_path / "nope"), "--name", "x", "--role", "node", "--out", "o")
    assert "cannot load CA" in missing
    assert "bad identity name" in fails(
        "ca", "issue", "--ca-dir", ca_dir, "--name", "bad name", "--role", "client", "--out", str(tmp_path / "o")
    )
    fails("ca", "issue", "--ca-dir", ca_dir, "--name", "x", "--role", "peer", "--out", str(tmp_path / "o"))
    assert "IP" in fails(
        "ca",
        "issue",
        "--ca-dir",
        ca_dir,
        "--name",
        "x",
        "--role",
        "node",
        "--ip",
        "1.2.3",
        "--out",
        str(tmp_path / "o"),
    )
    existing = str(tmp_path / "pki/council/users/admin")
    assert "already exists" in fails(
        "ca", "issue", "--ca-dir", ca_dir, "--name", "admin", "--role", "admin", "--out", existing
    )
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    assert "junk.pem" in fails("ca", "revoke", "--ca-dir", ca_dir, "--cert", str(junk))
    fails("ca", "revoke", "--ca-dir", ca_dir, "--cert", str(tmp_path / "missing.pem"))
    other = tmp_path / "other"
    run("crypto", "generate", "--orgs", "1", "--clients", "0", "--out", str(other))
    assert "not issued by this CA" in fails(
        "ca", "revoke", "--ca-dir", ca_dir, "--cert", str(other / "council/users/admin/cert.pem")
    )


def test_real_entry_point_exit_code(tmp_path: Path) -> None:
    code = "from secprivnode.cli.main import main; main()"
    res = subprocess.run(
        [sys.executable, "-c", code, "ca", "revoke", "--ca-dir", str(tmp_path), "--cert", str(tmp_path / "x.pem")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 1
    assert "Error:" in res.stderr and "Traceback" not in res.stderr
