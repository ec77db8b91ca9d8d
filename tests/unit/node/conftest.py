"""Fixtures for the pipeline tests (helpers live in pipeline_kit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pipeline_kit import FakeState, Pki, make_pki


@pytest.fixture(scope="session")
def pki() -> Pki:
    """Three orgs, each with two nodes, an admin and a client; plus an outsider org's client."""
    return make_pki()


@pytest.fixture
def state() -> FakeState:
    return FakeState()
