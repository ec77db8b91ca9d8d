"""NIST CAVP FIPS 186-3 ECDSA vectors (P-256, SHA-256) from the cryptography-vectors package.

All 15 SigVer and all 15 SigGen cases of the [P-256,SHA-256] section run on both backends; the
pure backend takes about 2 ms a verification, so no subsampling is needed.
"""

from __future__ import annotations

from pathlib import Path

import cryptography_vectors
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from crypto.signing import NativeBackend, PrivateKey, PublicKey, PureBackend, get_backend

_DIR = Path(cryptography_vectors.__file__).parent / "asymmetric" / "ECDSA" / "FIPS_186-3"
_SECTION = "[P-256,SHA-256]"
BACKENDS = [get_backend("native"), get_backend("pure")]


def _records(path: Path) -> list[dict[str, str]]:
    """The ``key = value`` records of one section of a CAVP response file."""
    records: list[dict[str, str]] = []
    in_section = False
    current: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            in_section = line == _SECTION
            continue
        if not in_section or line.startswith("#"):
            continue
        if not line:
            if current:
                records.append(current)
                current = {}
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    if in_section and current:
        records.append(current)
    return records


def _point(rec: dict[str, str]) -> PublicKey:
    return PublicKey(b"\x04" + bytes.fromhex(rec["Qx"]).rjust(32, b"\0") + bytes.fromhex(rec["Qy"]).rjust(32, b"\0"))


def _sig(rec: dict[str, str]) -> bytes:
    return encode_dss_signature(int(rec["R"], 16), int(rec["S"], 16))


SIGVER = _records(_DIR / "SigVer.rsp")
SIGGEN = _records(_DIR / "SigGen.txt")


def test_vector_files_parsed() -> None:
    assert len(SIGVER) == 15 and len(SIGGEN) == 15
    results = {r["Result"][0] for r in SIGVER}
    assert results == {"P", "F"}  # both outcomes present, so the test can fail either way


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_sigver(backend: NativeBackend | PureBackend) -> None:
    for rec in SIGVER:
        expected = rec["Result"].startswith("P")
        got = backend.verify(_point(rec), _sig(rec), bytes.fromhex(rec["Msg"]), strict=False)
        assert got is expected, rec["Result"]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_siggen_given_signature_verifies(backend: NativeBackend | PureBackend) -> None:
    for rec in SIGGEN:
        msg = bytes.fromhex(rec["Msg"])
        assert backend.verify(_point(rec), _sig(rec), msg, strict=False)
        assert not backend.verify(_point(rec), _sig(rec), msg + b"\x00", strict=False)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_siggen_sign_with_given_d(backend: NativeBackend | PureBackend) -> None:
    for rec in SIGGEN:
        key = PrivateKey.from_scalar(bytes.fromhex(rec["d"]).rjust(32, b"\0"))
        assert key.public == _point(rec)  # d and Q of the vector belong together
        msg = bytes.fromhex(rec["Msg"])
        sig = backend.sign(key, msg)
        for verifier in BACKENDS:
            assert verifier.verify(_point(rec), sig, msg)  # strict: our signatures are low-S DER
