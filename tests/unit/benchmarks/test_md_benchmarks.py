"""The MD benchmarks' quick modes run and write sane tables, and the study lookup of the speed
benchmark (benchmarks/bench_md_speed.py, benchmarks/bench_md_neighbors.py, loaded by path)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from _paths import BENCHMARKS


@pytest.fixture(scope="module", autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


def load_bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_md_speed_study_lookup() -> None:
    bench = load_bench("bench_md_speed")
    assert bench.study_reference("dimenetpp-lgps-v1") == ("DimeNet++", 6.0)
    assert bench.study_reference("dimenet-lgps-v1") == ("DimeNet", 1.4)
    assert bench.study_reference("schnet-lgps-v1") == ("SchNet", 22.5)
    label, value = bench.study_reference("nequip-lgps-v1")
    assert value == 3.0
    assert "Equiformer" in label
    assert "closest equivariant" in label
    assert np.isnan(bench.study_reference("pair")[1])


def test_neighbors_benchmark_quick(tmp_path: Path) -> None:
    bench = load_bench("bench_md_neighbors")
    assert bench.main(["--quick", "--replicas", "1,2", "--calls", "1", "--out", str(tmp_path)]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "neighbors.csv")
    assert list(table.replicas) == [1, 2]
    assert (table.max_dE_eV < 1e-3).all()
    assert (table[["nl_old_ms", "nl_new_ms", "force_old_ms", "force_new_ms"]] > 0).all().all()


def test_md_speed_benchmark_quick(tmp_path: Path) -> None:
    bench = load_bench("bench_md_speed")
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "md_speed.csv")
    assert list(zip(table.path, table.replicas, strict=True)) == [
        ("old", 1),
        ("old", 2),
        ("new", 1),
        ("new", 2),
    ]
    assert (table.ms_per_step > 0).all()
    assert (table.stopped == 0).all()
    assert np.allclose(table.ns_day_aggregate, table.ns_day_per_replica * table.replicas)
    assert np.allclose(table.aggregate_vs_study, table.ns_day_aggregate / 22.5)
    assert (table.study_reference == "SchNet").all()
    assert np.allclose(table.speedup_vs_old[:2], 1.0)
    assert "| model | path | replicas | ms_per_step |" in (tmp_path / "md_speed.md").read_text()
    assert (tmp_path / "md_speed.png").stat().st_size > 10_000


def test_speed_benchmark_quick(tmp_path):
    bench = load_bench("bench_md_speed")
    assert bench.main(["--quick", "--models", "pair", "--out", str(tmp_path)]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "md_speed.csv")
    assert list(table.replicas) == [1, 2]
    assert list(table.path) == ["new", "new"]  # a registered provider has no old path
    assert (table.ns_day_aggregate > 0).all()
    assert (table.stopped == 0).all()
