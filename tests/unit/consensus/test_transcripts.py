"""Golden-transcript tests: each testdata/*.txt is replayed command by command and its output
compared with the expected text. ``RAFT_REWRITE=1`` rewrites the files with the actual output
(review the diff before committing it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from interaction import run_transcript

TESTDATA = Path(__file__).resolve().parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


def test_transcripts_exist() -> None:
    assert len(FILES) >= 4


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript(path: Path) -> None:
    expected, actual = run_transcript(path)
    if os.environ.get("RAFT_REWRITE") == "1":
        path.write_text(actual)
        return
    assert actual == expected
