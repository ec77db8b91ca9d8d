"""LevelDB memory options: passed through to the database, out-of-range values refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage import kv
from storage.errors import StorageError
from storage.kv import Database, check_cache_options


def test_configured_sizes_open_a_working_database(tmp_path: Path) -> None:
    small: dict[str, Any] = {
        "block_cache_bytes": 1 << 20,
        "write_buffer_bytes": kv.WRITE_BUFFER_BYTES_MIN,
        "max_open_files": 74,
    }
    default: dict[str, Any] = {}
    for name, options in (("small", small), ("default", default)):
        with Database(tmp_path / name, **options) as db:
            for i in range(512):  # 2 MiB
                db.raw.put(i.to_bytes(4, "big"), bytes([i % 251]) * 4096)
            assert db.raw.get((7).to_bytes(4, "big")) == bytes([7]) * 4096
            # A writer waits for the previous memtable's flush before switching again, so 2 MiB
            # through a 64 KiB memtable has left table files; the default 32 MiB one holds it all.
            tables = len(list((tmp_path / name).glob("*.ldb")))
            assert tables >= 1 if name == "small" else tables == 0
    small_db = tmp_path / "small"
    with Database(small_db, create=False, **small) as db:
        assert db.raw.get((511).to_bytes(4, "big")) == bytes([511 % 251]) * 4096


def test_defaults_are_within_leveldb_ranges() -> None:
    check_cache_options(kv.BLOCK_CACHE_BYTES, kv.WRITE_BUFFER_BYTES, kv.MAX_OPEN_FILES)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"block_cache_bytes": 4095}, "block_cache_bytes: must be >= 4096"),
        ({"write_buffer_bytes": 64 * 1024 - 1}, "write_buffer_bytes: must be in [65536, 1073741824]"),
        ({"write_buffer_bytes": (1 << 30) + 1}, "write_buffer_bytes: must be in"),
        ({"max_open_files": 73}, "max_open_files: must be in [74, 50000]"),
        ({"max_open_files": 50_001}, "max_open_files: must be in"),
    ],
)
def test_out_of_range_is_refused_before_opening(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Database(tmp_path / "db", **options)
    assert not (tmp_path / "db").exists()


def test_open_errors_still_typed(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        Database(tmp_path / "missing", create=False, block_cache_bytes=1 << 20)
