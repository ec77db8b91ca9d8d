"""``secprivnode ledger verify`` on a good ledger, a corrupted copy, and forged signatures."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crypto.ca import CertificateAuthority, Role
from secprivnode.cli.main import cli
from storage import keys as K
from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.testing import Chain, Signer, TestKeys

NOW = 1_763_700_000


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def orderer() -> Signer:
    ca = CertificateAuthority.create("council", now=NOW)
    key, pem = ca.issue("orderer0", Role.NODE, now=NOW)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return Signer(key, der)


def build(data: Path, orderer: Signer, *, blocks: int = 4) -> None:
    base = TestKeys.generate(random.Random(9))
    keys = TestKeys(base.creator, base.endorser, orderer)
    with Database(data / "ledger") as db:
        for seed, channel in enumerate(["city", "transport"]):
            led, chain = ChannelLedger(db, channel), Chain(channel, keys, seed=seed)
            for i in range(blocks):
                chain.commit(led, [chain.tx([(f"k{i}", b"v")]), chain.tx([("x", bytes([i]))])])


def test_verify_good_ledger(tmp_path: Path, orderer: Signer) -> None:
    build(tmp_path, orderer)
    code, out = invoke("ledger", "verify", "--data", str(tmp_path))
    assert code == 0, out
    assert "channel city: OK, 4 blocks, 8 transactions" in out
    assert "channel transport: OK, 4 blocks" in out
    code, out = invoke("ledger", "verify", "--data", str(tmp_path), "--channel", "transport")
    assert code == 0 and "city" not in out


def test_verify_names_the_first_bad_height_in_a_corrupted_copy(tmp_path: Path, orderer: Signer) -> None:
    build(tmp_path / "good", orderer)
    shutil.copytree(tmp_path / "good", tmp_path / "bad")
    with Database(tmp_path / "bad" / "ledger") as db:
        key = K.block_key(K.channel_prefix("city"), 2)
        value = bytearray(db.raw.get(key))
        value[len(value) // 2] ^= 0x01
        db.raw.put(key, bytes(value), sync=True)
    code, out = invoke("ledger", "verify", "--data", str(tmp_path / "bad"))
    assert code == 1
    assert "channel city: FAILED at block 2: CorruptionError" in out
    assert "channel transport: OK" in out
    assert invoke("ledger", "verify", "--data", str(tmp_path / "good"))[0] == 0


def test_verify_rejects_headers_not_signed_by_their_certificate(tmp_path: Path, orderer: Signer) -> None:
    impostor = Signer(TestKeys.generate(random.Random(1)).orderer.key, orderer.cert)
    build(tmp_path, impostor, blocks=2)
    code, out = invoke("ledger", "verify", "--data", str(tmp_path))
    assert code == 1 and "FAILED at block 0: ChainError" in out and "signature" in out
    assert invoke("ledger", "verify", "--data", str(tmp_path), "--no-signatures")[0] == 0


def test_verify_without_a_ledger(tmp_path: Path) -> None:
    code, out = invoke("ledger", "verify", "--data", str(tmp_path))
    assert code == 1 and "no ledger database" in out


def test_verify_on_a_running_nodes_directory_says_to_stop_it(tmp_path: Path, orderer: Signer) -> None:
    build(tmp_path, orderer)
    with Database(tmp_path / "ledger", create=False):  # what a running node holds open
        code, out = invoke("ledger", "verify", "--data", str(tmp_path))
    assert code == 1
    assert "belongs to a running node" in out and "needs the node stopped" in out, out
    assert "IO error" not in out  # no raw LevelDB message as the whole story
