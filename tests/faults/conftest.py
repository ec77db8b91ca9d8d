"""Fault-injection scenarios on the namespace test bed: make ``testbed`` and ``framework`` importable.

The bed needs root and iproute2. Outside CI a machine without them skips these tests with the
reason; in CI (``CI=true``) they fail instead, so a broken runner cannot pass by skipping.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent.parent
for _p in (str(_TESTS), str(_TESTS / "functional")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from testbed.netns import netns_unavailable_reason  # noqa: E402


@pytest.fixture(scope="session")
def netns_ok() -> None:
    """Skip (fail in CI) unless this machine can create network namespaces."""
    reason = netns_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI must run the namespace tests, but {reason}")
    pytest.skip(reason)
