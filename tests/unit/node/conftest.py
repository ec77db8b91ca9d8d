"""Fixtures for the pipeline tests (helpers live in pipeline_kit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from collections.abc import Iterator

from pipeline_kit import Chain, FakeState, Pki, make_pki


@pytest.fixture(scope="session")
def pki() -> Pki:
    """Three orgs, each with two nodes, an admin and a client; plus an outsider org's client."""
    return make_pki()


@pytest.fixture
def state() -> FakeState:
    return FakeState()


@pytest.fixture
def chain(pki: Pki, tmp_path: Path) -> Iterator[Chain]:
    """The 'city' channel after its genesis block, on a real LevelDB ledger in tmp_path."""
    c = Chain(pki, tmp_path / "ledger")
    yield c
    c.close()
