"""Client SDK tests reuse the RPC tests' in-memory node and live-server fixtures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_name = "secprivnode_tests_rpc_conftest"
if _name not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_name, Path(__file__).parent.parent / "rpc" / "conftest.py")
    assert _spec is not None and _spec.loader is not None
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_name] = _mod
    _spec.loader.exec_module(_mod)

_rpc = sys.modules[_name]
fakemod = _rpc.fakemod
fake = _rpc.fake
limits = _rpc.limits
server = _rpc.server
