"""The history checker: after healing and draining, prove that nothing acknowledged was lost.

Input: a workload history (:mod:`testbed.workload`) and the data directories of the STOPPED nodes
(LevelDB allows one process per database). It reads every node's ledger offline and checks:

1. **same chain**: every node has the same height and the same block hash at every height (no
   node has a block another contradicts);
2. **ledger verify**: ``secprivnode ledger verify --data DIR`` passes on every node;
3. **acknowledged = committed once**: every ``ok`` transaction id is VALID exactly once, in the
   block (and at the index) the client was told, on every node;
4. **no double commit**: no transaction id is VALID twice anywhere;
5. **failures left no trace**: no ``fail`` transaction id is VALID anywhere;
6. **replay**: applying the VALID transactions' writes in block order reproduces every node's
   world state (every namespace the transactions wrote), and every VALID transaction's reads saw
   exactly the version the replay held at its position — so read-modify-write results are
   consistent with the block order and no update was lost.

It returns a :class:`Report` (``ok``, findings, figures) whose :meth:`Report.text` is printed.
This module never writes to a ledger.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import ReadWriteSet, ValidationCode, Version

__all__ = ["Op", "Report", "check", "latency_figures", "load_history"]

# Findings printed per check; the rest are counted (a broken run can produce thousands).
FINDINGS_SHOWN_MAX = 10
# Seconds `ledger verify` may take on one node's ledger (a few thousand blocks).
VERIFY_TIMEOUT_S = 300.0


@dataclass
class Op:
    op: int
    f: str
    key: str
    tx_id: str | None
    node: str
    status: str = "pending"  # ok / fail / info / pending (no completion recorded)
    block: int | None = None
    index: int | None = None
    start_ms: int = 0
    end_ms: int | None = None
    error: str = ""


def load_history(path: Path) -> dict[int, Op]:
    ops: dict[int, Op] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r["type"] == "invoke":
            ops[r["op"]] = Op(r["op"], r["f"], r["key"], r["tx_id"], r["node"], start_ms=r["time_ms"])
            continue
        o = ops[r["op"]]
        o.status, o.end_ms = r["type"], r["time_ms"]
        o.block, o.index = r.get("block"), r.get("index")
        o.error = r.get("error") or ""
    return ops


@dataclass
class NodeLedger:
    name: str
    height: int
    hashes: list[bytes]
    txs: list[tuple[int, int, str, ValidationCode]]  # block, index, tx id (0x hex), code
    state: dict[tuple[str, str], tuple[bytes, Version]]
    stale_reads: list[str]  # VALID transactions whose reads the replay contradicts
    replay_diff: list[str]  # world state entries the replay does not reproduce


def _replay_rwset(
    rwset: ReadWriteSet,
    tid: str,
    number: int,
    index: int,
    replay: dict[tuple[str, str], tuple[bytes, Version]],
    stale: list[str],
) -> None:
    """Check a VALID transaction's reads against the replay, then apply its writes."""
    ns = rwset.namespace
    for r in rwset.reads:
        seen = replay.get((ns, r.key))
        expected = seen[1] if seen else None
        if (tuple(r.version) if r.version is not None else None) != expected:
            stale.append(f"{tid} in block {number} read {ns}/{r.key} at {r.version}, replay has {expected}")
    for w in rwset.writes:
        if w.value is None:
            replay.pop((ns, w.key), None)
        else:
            replay[(ns, w.key)] = (w.value, (number, index))


def read_ledger(name: str, data_dir: Path, channel: str) -> NodeLedger:
    """Read a stopped node's chain, replay it, and compare the replay with its world state."""
    with Database(data_dir / "ledger", create=False) as db:
        ledger = ChannelLedger(db, channel)
        hashes, txs = [], []
        replay: dict[tuple[str, str], tuple[bytes, Version]] = {}
        stale: list[str] = []
        for number in range(ledger.height):
            block = ledger.get_block(number)
            hashes.append(block.header.hash())
            codes = ledger.get_codes(number)
            for index, (tx, code) in enumerate(zip(block.transactions, codes, strict=True)):
                tid = "0x" + tx.tx_id.hex()
                txs.append((number, index, tid, code))
                if code is not ValidationCode.VALID:
                    continue
                for rwset in (tx.rwset, *tx.extra_rwsets):  # the called contracts' namespaces too
                    _replay_rwset(rwset, tid, number, index, replay, stale)
        state: dict[tuple[str, str], tuple[bytes, Version]] = {}
        for ns in {ns for ns, _ in replay}:
            for key, value, version in ledger.get_range(ns, "", ""):
                state[(ns, key)] = (value, tuple(version))  # type: ignore[assignment]
        diff = [
            f"{ns}/{key}: state {state.get((ns, key))!r:.80} replay {replay.get((ns, key))!r:.80}"
            for ns, key in sorted(set(state) | set(replay))
            if state.get((ns, key)) != replay.get((ns, key))
        ]
        return NodeLedger(name, ledger.height, hashes, txs, state, stale, diff)


def ledger_verify(data_dirs: dict[str, Path]) -> dict[str, tuple[bool, str]]:
    """``secprivnode ledger verify`` on every data directory (concurrently); name -> (passed, output)."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "secprivnode", "ledger", "verify", "--data", str(d)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, d in data_dirs.items()
    }
    out = {}
    for name, proc in procs.items():
        text, _ = proc.communicate(timeout=VERIFY_TIMEOUT_S)
        out[name] = (proc.returncode == 0, text.strip())
    return out


@dataclass
class Report:
    findings: dict[str, list[str]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.findings.values())

    def fail(self, check: str, finding: str) -> None:
        self.findings.setdefault(check, []).append(finding)

    def passed(self, check: str) -> None:
        self.findings.setdefault(check, [])

    def text(self) -> str:
        lines = ["history check: " + ("PASS" if self.ok else "FAIL")]
        for k, v in self.figures.items():
            lines.append(f"  {k}: {v}")
        for check, found in self.findings.items():
            lines.append(f"  [{'ok' if not found else 'FAIL'}] {check}" + (f" ({len(found)})" if found else ""))
            lines += [f"      {f}" for f in found[:FINDINGS_SHOWN_MAX]]
            if len(found) > FINDINGS_SHOWN_MAX:
                lines.append(f"      ... and {len(found) - FINDINGS_SHOWN_MAX} more")
        return "\n".join(lines)


def _check_chains(report: Report, ledgers: list[NodeLedger]) -> None:
    ref = ledgers[0]
    report.passed("same chain on every node")
    for lg in ledgers[1:]:
        if lg.height != ref.height:
            report.fail("same chain on every node", f"{lg.name} height {lg.height}, {ref.name} {ref.height}")
        for h, (a, b) in enumerate(zip(ref.hashes, lg.hashes, strict=False)):
            if a != b:
                report.fail(
                    "same chain on every node", f"block {h}: {ref.name} {a.hex()[:16]}, {lg.name} {b.hex()[:16]}"
                )
                break


def _check_ops(report: Report, ops: dict[int, Op], lg: NodeLedger) -> None:
    valid: dict[str, list[tuple[int, int]]] = {}
    for block, index, tid, code in lg.txs:
        if code is ValidationCode.VALID:
            valid.setdefault(tid, []).append((block, index))
    for tid, where in valid.items():
        if len(where) > 1:
            report.fail("no transaction VALID twice", f"{lg.name}: {tid} VALID at {where}")
    report.passed("no transaction VALID twice")
    report.passed("every acknowledged transaction committed once, where the client was told")
    report.passed("failed requests left no trace")
    for o in ops.values():
        at = valid.get(o.tx_id or "", [])
        if o.status == "ok":
            told = (o.block, o.index) if o.index is not None else None
            if len(at) != 1 or at[0][0] != o.block or (told is not None and at[0] != told):
                report.fail(
                    "every acknowledged transaction committed once, where the client was told",
                    f"{lg.name}: op {o.op} {o.tx_id} acknowledged at block {o.block} index {o.index}, VALID at {at}",
                )
        elif o.status == "fail" and at:
            report.fail(
                "failed requests left no trace", f"{lg.name}: op {o.op} {o.tx_id} failed ({o.error}) but VALID at {at}"
            )


def check(history: Path, data_dirs: dict[str, Path], channel: str) -> Report:
    """Check the history against the stopped nodes' ledgers (see the module docstring)."""
    report = Report()
    ops = load_history(history)
    statuses = Counter(o.status for o in ops.values())
    report.figures["operations"] = dict(sorted(statuses.items()))
    ledgers = [read_ledger(name, d, channel) for name, d in sorted(data_dirs.items())]
    report.figures["height"] = {lg.name: lg.height for lg in ledgers}
    _check_chains(report, ledgers)
    report.passed("ledger verify on every node")
    for name, (good, out) in sorted(ledger_verify(data_dirs).items()):
        if not good:
            report.fail("ledger verify on every node", f"{name}: {out}")
    for lg in ledgers:
        _check_ops(report, ops, lg)
    report.passed("reads consistent with block order (no lost update)")
    report.passed("world state equals a replay of the committed blocks")
    for lg in ledgers:
        for s in lg.stale_reads:
            report.fail("reads consistent with block order (no lost update)", f"{lg.name}: {s}")
        for s in lg.replay_diff:
            report.fail("world state equals a replay of the committed blocks", f"{lg.name}: {s}")
    unknown = [o for o in ops.values() if o.status in ("info", "pending") and o.tx_id]
    valid_ids = {tid for _, _, tid, code in ledgers[0].txs if code is ValidationCode.VALID}
    report.figures["unknown outcomes committed"] = f"{sum(o.tx_id in valid_ids for o in unknown)} of {len(unknown)}"
    rmw = [o for o in ops.values() if o.f == "rmw" and o.status == "ok"]
    report.figures["acknowledged read-modify-writes"] = len(rmw)
    return report


def latency_figures(history: Path, start_ms: int, end_ms: int) -> dict[str, float]:
    """Acknowledged operations that started in [start_ms, end_ms): throughput and latency percentiles."""
    ops = [o for o in load_history(history).values() if o.status == "ok" and start_ms <= o.start_ms < end_ms]
    lat = sorted((o.end_ms or o.start_ms) - o.start_ms for o in ops)
    span_s = max(end_ms - start_ms, 1) / 1000

    def pct(p: float) -> float:
        return float(lat[min(len(lat) - 1, int(p * len(lat)))]) if lat else float("nan")

    return {"acked": len(ops), "tx_per_s": round(len(ops) / span_s, 2), "p50_ms": pct(0.50), "p99_ms": pct(0.99)}
