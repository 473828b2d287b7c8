"""The simulated scaling benchmark's quick mode runs end to end and its lakes are exact."""

from __future__ import annotations

import csv
import importlib.util

import pytest
from _paths import BENCHMARKS


@pytest.mark.slow
def test_cluster_scaling_quick(tmp_path):
    path = BENCHMARKS / "bench_cluster_scaling.py"
    spec = importlib.util.spec_from_file_location("bench_cluster_scaling", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--nodes", "1,2", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "cluster_scaling.csv").open()))
    assert [int(r["nodes"]) for r in rows] == [1, 2]
    assert {r["compositions"] for r in rows} == {"251000"}  # same lake for any node count
    assert all(r["exact"] == "1" for r in rows)
    assert (tmp_path / "cluster_scaling.png").stat().st_size > 1000
