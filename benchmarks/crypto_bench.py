"""Crypto layer benchmark: native (OpenSSL) vs pure-Python, side by side, in one run.

Measures ECDSA P-256 sign/s and verify/s for both backends, SHA-256 throughput and small-message
rate (hashlib vs crypto.sha256_pure), RFC 6962 Merkle roots of 1,000 and 10,000 leaves, batch
verification through the process pool with one worker and with every core, and, when the
``openssl`` binary exists, ``openssl speed ecdsap256`` as the ceiling for native verification.

    python benchmarks/crypto_bench.py [--quick] [--seconds S] [--batch N] [--json PATH]

Prints what it measured and on what machine; it asserts nothing. Figures on a shared machine are
noisy: each rate is the best of a few timed rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import crypto.hashing
import crypto.merkle
import crypto.native
from crypto.batch import BatchVerifier
from crypto.hashing import Tag
from crypto.merkle import merkle_root
from crypto.sha256_pure import sha256 as sha256_pure
from crypto.signing import Backend, PrivateKey, get_backend


def rate(op: Callable[[int], object], seconds: float, rounds: int = 3) -> float:
    """Best operations per second over ``rounds`` timed rounds of about ``seconds / rounds`` each."""
    best = 0.0
    per_round = seconds / rounds
    for _ in range(rounds):
        n = 0
        start = time.perf_counter()
        while True:
            for i in range(16):
                op(n + i)
            n += 16
            elapsed = time.perf_counter() - start
            if elapsed >= per_round:
                break
        best = max(best, n / elapsed)
    return best


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _sign(b: Backend, key: PrivateKey, msgs: list[bytes], i: int) -> bytes:
    return b.sign(key, msgs[i % len(msgs)])


def _verify(b: Backend, key: PrivateKey, sigs: list[bytes], msgs: list[bytes], i: int) -> bool:
    return b.verify(key.public, sigs[i % len(sigs)], msgs[i % len(msgs)])


def pure_merkle_root(leaves: list[bytes]) -> bytes:
    """The same RFC 6962 root as crypto.merkle, with the pure-Python SHA-256."""
    level = [sha256_pure(b"\x00" + leaf) for leaf in leaves]
    while len(level) > 1:
        nxt = [sha256_pure(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


BLOCK_TXS = 500
TX_BYTES = 1460  # a store_bench transaction
HEADER_BYTES = 500  # its proposal header (the tx id is the digest of these bytes)


def _block_hashes(data: bytes, tx_bounds: list[int], id_bounds: list[int]) -> tuple[bytes, int]:
    """What a commit hashes per block: the tx ids, then the Merkle leaves, their root and the
    block's CRC-32 (crypto.hashing, whichever implementation it has)."""
    crypto.hashing.digest_ranges(Tag.PROPOSAL_HEADER, data, id_bounds)
    job = crypto.hashing.root_of_ranges(Tag.TRANSACTION, data, tx_bounds, crc32=True)
    return job.root(), job.crc32()


def block_hashing(repeat: int) -> dict[str, Any]:
    """A 500-tx block's hashing (~2,000 SHA-256 and a CRC-32 over ~712 KiB), per block, through
    hashlib one digest per Python call and through the compiled batch module, side by side."""
    data = os.urandom(BLOCK_TXS * TX_BYTES)
    tx_bounds = [i for t in range(BLOCK_TXS) for i in (t * TX_BYTES, (t + 1) * TX_BYTES)]
    id_bounds = [i for t in range(BLOCK_TXS) for i in (t * TX_BYTES + 2, t * TX_BYTES + 2 + HEADER_BYTES)]
    out: dict[str, Any] = {"block_hashing_native": crypto.native.describe()}
    run = partial(_block_hashes, data, tx_bounds, id_bounds)
    saved = crypto.hashing.sha256x, crypto.merkle.sha256x
    try:
        crypto.hashing.sha256x = crypto.merkle.sha256x = None
        want = run()
        out["block_hashing_hashlib_ms"] = timed(run, repeat) * 1e3
    finally:
        crypto.hashing.sha256x, crypto.merkle.sha256x = saved
    if crypto.native.sha256x is None:
        out["block_hashing_native_ms"] = None
        return out
    if run() != want:
        raise RuntimeError("the compiled module and hashlib disagree on a block's root or CRC")
    out["block_hashing_native_ms"] = timed(run, repeat) * 1e3
    return out


def openssl_speed(seconds: int) -> dict[str, float] | None:
    exe = shutil.which("openssl")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "speed", "-seconds", str(seconds), "ecdsap256"],
            capture_output=True,
            text=True,
            timeout=60 + 4 * seconds,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
    if m is None:
        return None
    return {"sign_per_s": float(m.group(1)), "verify_per_s": float(m.group(2))}


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("cryptography", "ecdsa", "msgpack"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few seconds in total (CI)")
    ap.add_argument("--seconds", type=float, default=None, help="time per rate measurement")
    ap.add_argument("--batch", type=int, default=None, help="signatures per batch (default 2000, quick 1000)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    secs = args.seconds if args.seconds is not None else (0.15 if args.quick else 1.5)
    batch_n = args.batch if args.batch is not None else (1000 if args.quick else 2000)
    cores = os.cpu_count() or 1
    console = Console()
    results: dict[str, Any] = {}

    native, pure = get_backend("native"), get_backend("pure")
    key = PrivateKey.from_scalar(hashlib.sha256(b"bench key").digest())
    msgs = [b"benchmark message %d" % i for i in range(64)]
    sigs = [native.sign(key, m) for m in msgs]
    for b in (native, pure):
        results[f"{b.name}_sign_per_s"] = rate(partial(_sign, b, key, msgs), secs)
        results[f"{b.name}_verify_per_s"] = rate(partial(_verify, b, key, sigs, msgs), secs)
    results["verify_speedup"] = results["native_verify_per_s"] / results["pure_verify_per_s"]
    results["sign_speedup"] = results["native_sign_per_s"] / results["pure_sign_per_s"]

    big = os.urandom(1 << 20)
    pure_len = (16 if args.quick else 128) * 1024
    small = os.urandom(64)
    hl_bulk = timed(lambda: hashlib.sha256(big).digest(), 5)
    pu_bulk = timed(lambda: sha256_pure(big[:pure_len]), 1 if args.quick else 2)
    results["hashlib_mb_per_s"] = len(big) / hl_bulk / 1e6
    results["pure_sha256_mb_per_s"] = pure_len / pu_bulk / 1e6
    results["hashlib_64b_per_s"] = rate(lambda i: hashlib.sha256(small).digest(), secs)
    results["pure_sha256_64b_per_s"] = rate(lambda i: sha256_pure(small), secs)

    for n in (1000, 10_000):
        leaves = [hashlib.sha256(b"%d" % i).digest() for i in range(n)]
        results[f"merkle_{n}_ms"] = timed(partial(merkle_root, leaves), 3 if args.quick else 10) * 1e3
    leaves = [hashlib.sha256(b"%d" % i).digest() for i in range(1000)]
    results["pure_merkle_1000_ms"] = timed(lambda: pure_merkle_root(leaves), 1) * 1e3

    results.update(block_hashing(3 if args.quick else 20))

    keys = [PrivateKey.from_scalar(hashlib.sha256(b"signer %d" % i).digest()) for i in range(16)]
    items = [(keys[i % 16].public, native.sign(keys[i % 16], b"tx %d" % i), b"tx %d" % i) for i in range(batch_n)]
    repeat = 2 if args.quick else 4
    inline = BatchVerifier(workers=1, inline_max=batch_n)  # everything in this process
    results["batch_inline_per_s"] = batch_n / timed(lambda: inline.verify_many(items), repeat)
    inline.close()
    for label, workers in (("1", 1), ("all", cores)):
        # Both through the pool path (inline_max=0), so the ratio measures parallelism only.
        with BatchVerifier(workers=workers, inline_max=0) as bv:
            bv.warm_up()
            bv.verify_many(items[:64])
            results[f"batch_pool_{label}_per_s"] = batch_n / timed(partial(bv.verify_many, items), repeat)
    results["batch_speedup"] = results["batch_pool_all_per_s"] / results["batch_pool_1_per_s"]

    speed = openssl_speed(1 if args.quick else 3)
    results["openssl_verify_per_s"] = speed["verify_per_s"] if speed else None
    results["openssl_sign_per_s"] = speed["sign_per_s"] if speed else None
    results["openssl_verify_ratio"] = results["native_verify_per_s"] / speed["verify_per_s"] if speed else None

    machine = {
        "cores": cores,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "packages": package_versions(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "batch_signatures": batch_n,
        "quick": args.quick,
    }
    report(console, results, machine)
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2, sort_keys=True) + "\n")
        console.print(f"wrote {args.json}")


def report(console: Console, r: dict[str, Any], machine: dict[str, Any]) -> None:
    def f(v: float | None, unit: str = "") -> str:
        return "n/a" if v is None else f"{v:,.1f}{unit}"

    def ratio(a: float | None, b: float | None) -> str:
        return "n/a" if a is None or b is None or b == 0 else f"{a / b:,.1f}x"

    t = Table(title="secprivnode crypto: native vs pure")
    t.add_column("operation")
    t.add_column("native", justify="right")
    t.add_column("pure", justify="right")
    t.add_column("native / pure", justify="right")
    t.add_row("ECDSA P-256 sign/s", f(r["native_sign_per_s"]), f(r["pure_sign_per_s"]), f(r["sign_speedup"], "x"))
    t.add_row(
        "ECDSA P-256 verify/s (strict)",
        f(r["native_verify_per_s"]),
        f(r["pure_verify_per_s"]),
        f(r["verify_speedup"], "x"),
    )
    t.add_row(
        "SHA-256 MB/s",
        f(r["hashlib_mb_per_s"]),
        f(r["pure_sha256_mb_per_s"], ""),
        ratio(r["hashlib_mb_per_s"], r["pure_sha256_mb_per_s"]),
    )
    t.add_row(
        "SHA-256 64 B hashes/s",
        f(r["hashlib_64b_per_s"]),
        f(r["pure_sha256_64b_per_s"]),
        ratio(r["hashlib_64b_per_s"], r["pure_sha256_64b_per_s"]),
    )
    t.add_row(
        "Merkle root 1,000 leaves (ms)",
        f(r["merkle_1000_ms"]),
        f(r["pure_merkle_1000_ms"]),
        ratio(r["pure_merkle_1000_ms"], r["merkle_1000_ms"]),
    )
    t.add_row("Merkle root 10,000 leaves (ms)", f(r["merkle_10000_ms"]), "-", "-")
    console.print(t)

    h = Table(title=f"a {BLOCK_TXS}-tx block's hashing on the commit path (ms per block)")
    h.add_column("hashlib, one digest per call")
    h.add_column(r["block_hashing_native"])
    h.add_column("hashlib / batched", justify="right")
    h.add_row(
        f(r["block_hashing_hashlib_ms"]),
        f(r["block_hashing_native_ms"]),
        ratio(r["block_hashing_hashlib_ms"], r["block_hashing_native_ms"]),
    )
    console.print(h)

    b = Table(title=f"batch verification, {machine['batch_signatures']:,} signatures (native)")
    b.add_column("path")
    b.add_column("verifies/s", justify="right")
    b.add_row("in-process (inline)", f(r["batch_inline_per_s"]))
    b.add_row("pool, 1 worker", f(r["batch_pool_1_per_s"]))
    b.add_row(f"pool, {machine['cores']} workers", f(r["batch_pool_all_per_s"]))
    b.add_row("batch_speedup (all / 1 worker)", f(r["batch_speedup"], "x"))
    console.print(b)

    o = Table(title="against openssl speed ecdsap256")
    o.add_column("")
    o.add_column("sign/s", justify="right")
    o.add_column("verify/s", justify="right")
    o.add_row("openssl speed", f(r["openssl_sign_per_s"]), f(r["openssl_verify_per_s"]))
    o.add_row("native backend", f(r["native_sign_per_s"]), f(r["native_verify_per_s"]))
    o.add_row("openssl_verify_ratio", "", f(r["openssl_verify_ratio"]) if r["openssl_verify_ratio"] is None
              else f"{r['openssl_verify_ratio']:.2f}")  # fmt: skip
    console.print(o)

    pk = machine["packages"]
    console.print(
        f"machine: {machine['cores']} cores, {machine['processor']}, {machine['platform']}\n"
        f"python {machine['python']}; cryptography {pk['cryptography']}, ecdsa {pk['ecdsa']}, "
        f"msgpack {pk['msgpack']}\ncommand: {machine['command']}"
    )


if __name__ == "__main__":
    main()
