"""The storage and memory sections: LevelDB memory options and malloc pinning load and are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from secprivnode.config import ConfigError, StorageSection, load_config
from storage import kv

MINIMAL = {
    "node": {"name": "n1", "org": "council", "data_dir": "data"},
    "identity": {"cert": "cert.pem", "key": "key.pem"},
    "channels": [{"name": "city", "genesis": "city.block"}],
}


def load(tmp_path: Path, storage: object) -> StorageSection:
    p = tmp_path / "node.yaml"
    p.write_text(yaml.safe_dump({**MINIMAL, "storage": storage}))
    return load_config(p).storage


def test_defaults_are_the_storage_layers() -> None:
    s = StorageSection()
    assert (s.block_cache_bytes, s.write_buffer_bytes, s.max_open_files) == (
        kv.BLOCK_CACHE_BYTES,
        kv.WRITE_BUFFER_BYTES,
        kv.MAX_OPEN_FILES,
    )


def test_example_documents_the_defaults() -> None:
    example = Path(__file__).resolve().parents[3] / "configs" / "node.example.yaml"
    assert load_config(example).storage == StorageSection()


def test_values_load(tmp_path: Path) -> None:
    s = load(tmp_path, {"block_cache_bytes": 1 << 24, "write_buffer_bytes": 1 << 23, "max_open_files": 200})
    assert s == StorageSection(block_cache_bytes=1 << 24, write_buffer_bytes=1 << 23, max_open_files=200)


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"block_cache_bytes": 0}, "storage.block_cache_bytes: must be >= 4096"),
        ({"write_buffer_bytes": 1024}, "storage.write_buffer_bytes: must be in"),
        ({"max_open_files": 10}, "storage.max_open_files: must be in"),
        ({"max_open_files": "many"}, "storage.max_open_files: expected an integer"),
        ({"cache": 1}, "storage: unknown option(s) ['cache']"),
    ],
)
def test_mistakes_name_the_option(tmp_path: Path, storage: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, storage)
    assert message in str(err.value)


def test_malloc_pinning_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    p = tmp_path / "node.yaml"
    p.write_text(yaml.safe_dump(MINIMAL))
    assert load_config(p).memory.pin_malloc is True
    p.write_text(yaml.safe_dump({**MINIMAL, "memory": {"pin_malloc": False}}))
    assert load_config(p).memory.pin_malloc is False
    p.write_text(yaml.safe_dump({**MINIMAL, "memory": {"pin_malloc": "no"}}))
    with pytest.raises(ConfigError, match=r"memory\.pin_malloc: expected true or false"):
        load_config(p)
