"""P2P unit tests: register the shared harness module (it lives beside the integration tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if "p2p_harness" not in sys.modules:
    _path = Path(__file__).resolve().parents[2] / "integration" / "p2p" / "harness.py"
    _spec = importlib.util.spec_from_file_location("p2p_harness", _path)
    assert _spec is not None and _spec.loader is not None
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["p2p_harness"] = _mod
    _spec.loader.exec_module(_mod)
