"""The README's and docs' examples run: every ``sh`` and ``python`` block, in document order.

The convention (also stated in the README, "Examples are tested"):

* A fenced block tagged ``sh`` (or ``shell``, ``bash``) is run with ``bash -euo pipefail``; one
  tagged ``python`` with this interpreter. They run in document order — README.md first, then
  ``docs/*.md`` by file name — as one operator session, in a scratch directory that links to every
  top-level entry of this checkout except ``city``, so ``./city`` is the session's own network.
* A block that cannot run there carries, on the line just before its fence,
  ``<!-- doc-test: skip REASON -->`` with a non-empty reason.
* Other tags (``json``, ``yaml``…) are data and untagged blocks are text; an untagged block that
  starts like a command fails :func:`test_every_command_block_is_tagged`.
* Ports: ``network init`` takes its base port from ``SECPRIVNODE_BASE_PORT``, set to a free block;
  the default ports written in the blocks (127.0.0.1 or localhost, 7051+i P2P, 8051+i JSON-RPC,
  9051+i operations) are rewritten to that block before a block runs.

The nodes the blocks start are stopped at the end, whatever happened, and on failure their logs
are shown.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from framework import free_base_port, pid_alive, wait_until

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNERS = {"sh": "sh", "shell": "sh", "bash": "sh", "python": "python"}
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
MARKER = re.compile(r"^<!--\s*doc-test:")
SKIP = re.compile(r"^<!--\s*doc-test:\s*skip\s+(?P<reason>\S.*?)\s*-->$")
# First lines that mean "this is a command", so an untagged block holding one is a mistake.
COMMANDISH = re.compile(r"^(\$ |\.venv/|scripts/|secprivnode |curl |python3? )")
# Seconds one block may take: city-up and `network up` wait up to 60 s for health and a leader.
BLOCK_TIMEOUT_S = 300.0
# Ports the session's network may use: three nodes, one that joins, one spare.
PORTS_NEEDED = 5
# Entries of the checkout not linked into the scratch directory.
NOT_LINKED = {"city", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


@dataclass(frozen=True)
class DocBlock:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip: str | None  # the reason given by a skip marker

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def extract(path: Path) -> list[DocBlock]:
    """Every fenced block of a markdown file, with the skip marker just before it (if any)."""
    lines = path.read_text().splitlines()
    blocks: list[DocBlock] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start = i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{path}:{start + 1}: unclosed code block"
        prev = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.match(prev)
        text = "\n".join(lines[start + 1 : end]) + "\n"
        blocks.append(DocBlock(path, start + 1, m["lang"], text, skip["reason"] if skip else None))
        i = end + 1
    return blocks


ALL_BLOCKS = [b for p in DOC_FILES for b in extract(p)]
RUNNABLE = [b for b in ALL_BLOCKS if b.lang in RUNNERS]


def rewrite_ports(text: str, base: int) -> str:
    """Map the default ports of `network init` (7051.., 8051.., 9051..) onto ``base``."""

    def sub(m: re.Match[str]) -> str:
        port = int(m["port"])
        for default, offset in ((7051, 0), (8051, 1000), (9051, 2000)):
            if default <= port < default + 49:
                return f"{m['host']}:{base + offset + port - default}"
        return m[0]

    return re.sub(r"(?P<host>127\.0\.0\.1|localhost):(?P<port>\d{4})\b", sub, text)


# ---- the convention itself (no network needed) -------------------------------------------------


def test_the_docs_have_runnable_examples() -> None:
    assert any(b.path.name == "README.md" and b.lang == "sh" and not b.skip for b in RUNNABLE)
    assert any(b.path.name == "rpc.md" and b.lang == "python" for b in RUNNABLE)


def test_every_command_block_is_tagged() -> None:
    untagged = [
        b.where
        for b in ALL_BLOCKS
        if not b.lang and COMMANDISH.match(next((ln.strip() for ln in b.text.splitlines() if ln.strip()), ""))
    ]
    assert not untagged, f"untagged blocks holding commands (tag them ```sh, or mark them skipped): {untagged}"


def test_every_marker_is_well_formed_and_precedes_a_block() -> None:
    bad = []
    for path in DOC_FILES:
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if not MARKER.match(line):  # at column 0: an indented one is a code sample of the syntax
                continue
            following = next((ln for ln in lines[n + 1 :] if ln.strip()), "")
            if not SKIP.match(line.strip()) or not FENCE.match(following):
                bad.append(f"{path.relative_to(ROOT)}:{n + 1}")
    assert not bad, f"doc-test markers must read `<!-- doc-test: skip REASON -->` just before a fence: {bad}"


def test_port_rewriting() -> None:
    text = "curl http://127.0.0.1:8051/ localhost:9052/metrics 127.0.0.1:7051 127.0.0.1:5432"
    assert (
        rewrite_ports(text, 20000)
        == "curl http://127.0.0.1:21000/ localhost:22001/metrics 127.0.0.1:20000 127.0.0.1:5432"
    )


# ---- running them ------------------------------------------------------------------------------


@dataclass
class DocSession:
    work: Path
    base: int
    env: dict[str, str]
    failed: bool = False


def _stop_everything(work: Path, env: dict[str, str]) -> None:
    """`network down`, then any node process still recorded under city/nodes (a removed one too)."""
    city = work / "city"
    if (city / "network.yaml").exists():
        subprocess.run(
            [sys.executable, "-m", "secprivnode", "network", "down", "--dir", str(city)],
            cwd=work,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
    for pid_file in city.glob("nodes/*/node.pid"):
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            continue
        wait_until(lambda pid=pid: not pid_alive(pid), 30, what=f"node process {pid} to exit")


@pytest.fixture(scope="module")
def session(tmp_path_factory: Any) -> Iterator[DocSession]:
    work = tmp_path_factory.mktemp("docs") / "checkout"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (work / entry.name).symlink_to(entry)
    base = free_base_port(PORTS_NEEDED, random.Random(f"{os.getpid()}-{time.time_ns()}"))
    env = {k: v for k, v in os.environ.items() if k != "CITY_DIR"}
    env["SECPRIVNODE_BASE_PORT"] = str(base)
    s = DocSession(work, base, env)
    try:
        yield s
    finally:
        _stop_everything(work, env)
        if s.failed:
            for log in sorted((work / "city").glob("nodes/*/node.log")):
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                print(f"---- {log.parent.name} log tail ----\n{tail}")


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_doc_block(block: DocBlock, session: DocSession) -> None:
    if block.skip:
        pytest.skip(f"marked in the doc: {block.skip}")
    if session.failed:
        pytest.skip("an earlier block failed; later ones depend on its state")
    text = rewrite_ports(block.text, session.base)
    cmd = ["bash", "-euo", "pipefail", "-c", text] if RUNNERS[block.lang] == "sh" else [sys.executable, "-c", text]
    try:
        done = subprocess.run(
            cmd, cwd=session.work, env=session.env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        session.failed = True
        raise AssertionError(f"{block.where}: still running after {BLOCK_TIMEOUT_S:.0f}s:\n{text}") from None
    if done.returncode != 0:
        session.failed = True
        raise AssertionError(
            f"{block.where} exited {done.returncode}:\n{text}\n--- stdout ---\n{done.stdout[-4000:]}"
            f"\n--- stderr ---\n{done.stderr[-4000:]}"
        )
