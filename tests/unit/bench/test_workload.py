"""Workload generation: seeded streams, key spaces, mixes and the setup transactions."""

from __future__ import annotations

from collections import Counter

import pytest

from secprivnode.bench.workload import Workload, WorkloadSpec, asset_id, setup_ops
from secprivnode.client import check_args


def test_blind_writes_have_fresh_keys_and_sized_values() -> None:
    w = Workload(WorkloadSpec("write", value_bytes=200, prefix="p"), worker=2, seed=7)
    ops = [w.next_op() for _ in range(100)]
    assert all(o.fn == "put" and o.ordered for o in ops)
    assert len({o.args[0] for o in ops}) == 100
    assert all(o.args[0].startswith("p-w2-") for o in ops)
    assert all(isinstance(o.args[1], bytes) and len(o.args[1]) == 200 for o in ops)
    check_args(ops[0].args)  # canonical-encodable contract arguments


def test_streams_are_reproducible_per_seed_and_distinct_per_worker() -> None:
    spec = WorkloadSpec("rmw", keys=50)
    a = [Workload(spec, 0, 1).next_op() for _ in range(1)]
    b = [Workload(spec, 0, 1).next_op() for _ in range(1)]
    assert a == b
    w0, w1 = Workload(spec, 0, 1), Workload(spec, 1, 1)
    assert [w0.next_op() for _ in range(20)] != [w1.next_op() for _ in range(20)]


def test_rmw_and_query_stay_in_the_key_space() -> None:
    spec = WorkloadSpec("mix", keys=5, prefix="q")
    w = Workload(spec, 0, 3)
    ops = [w.next_op() for _ in range(2000)]
    kinds = Counter(o.kind for o in ops)
    # 50/25/25 by default; 2000 draws stay well within these bounds for any seed.
    assert 850 < kinds["write"] < 1150 and 350 < kinds["rmw"] < 650 and 350 < kinds["query"] < 650
    keys = {o.args[0] for o in ops if o.kind in ("rmw", "query")}
    assert keys == {asset_id("q", i) for i in range(5)}
    assert all(o.fn == "update" for o in ops if o.kind == "rmw")
    assert all(o.fn == "read" and not o.ordered for o in ops if o.kind == "query")


def test_setup_creates_each_asset_once() -> None:
    spec = WorkloadSpec("rmw", keys=7, prefix="s")
    ops = list(setup_ops(spec, "transport"))
    assert [o.args[0] for o in ops] == [asset_id("s", i) for i in range(7)]
    assert all(o.fn == "create" and o.args[1] == "transport" for o in ops)
    assert spec.updates_assets and WorkloadSpec("mix").updates_assets
    assert not WorkloadSpec("query").updates_assets and not WorkloadSpec("mix", mix=(("query", 1),)).updates_assets
    assert spec.needs_assets and not WorkloadSpec("write").needs_assets
    assert WorkloadSpec("mix").needs_assets
    assert not WorkloadSpec("mix", mix=(("write", 1),)).needs_assets


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "nope"},
        {"value_bytes": -1},
        {"keys": 0},
        {"mix": (("write", 0),)},
        {"mix": (("delete", 1),)},
        {"prefix": "a/b"},
    ],
)
def test_bad_specs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WorkloadSpec(**kwargs)  # type: ignore[arg-type]
