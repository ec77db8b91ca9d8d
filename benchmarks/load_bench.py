"""CI entry point of the end-to-end load benchmark (``benchmarks/*_bench.py --quick``).

    python benchmarks/load_bench.py --quick [--json PATH]   # a tiny 3-node network for a few seconds
    python benchmarks/load_bench.py [--json PATH]           # the full 60 s run of benchmarks/load.py

Everything is ``benchmarks/load.py`` (which is ``secprivnode bench``); see its docstring. It
prints what it measured and on what machine; it asserts nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import main

if __name__ == "__main__":
    main(sys.argv[1:])
