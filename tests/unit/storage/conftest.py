"""Fixtures for the storage tests: a node database in tmp_path and a chain of real signed blocks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.testing import Chain, TestKeys


@pytest.fixture(scope="session")
def keys() -> TestKeys:
    return TestKeys.generate(random.Random(20261121))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    with Database(db_path) as d:
        yield d


@pytest.fixture
def chain(keys: TestKeys) -> Chain:
    return Chain("city", keys)


@pytest.fixture
def ledger(db: Database) -> ChannelLedger:
    return ChannelLedger(db, "city")
