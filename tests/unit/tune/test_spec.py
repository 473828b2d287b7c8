"""Sweep specs of ``crystalspace mlff tune``: the search space, trial counts, and one clear error for
each kind of bad spec (in-process; the sweeps themselves: tests/integration/test_mlff_tune.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _tune import SMALL, SUBSET, spec_file
from typer.testing import CliRunner

from crystalspace.config import ConfigError
from crystalspace.tune import count_trials, load_spec, param_space

GPU = "pipelines/configs/mlff_tune_gpu.yaml"


def test_spec_space_and_bad_input(tmp_path) -> None:
    spec = load_spec(Path(SMALL))
    assert count_trials(spec) == 8  # 2 models × 2 widths (grids) × 2 samples
    space = param_space(spec)
    assert set(space) == {"model", "hidden", "cutoff", "layers", "lr", "force_weight"}
    assert space["model"] == {"grid_search": ["schnet", "painn"]}
    assert space["layers"].upper == 3  # randint bounds are inclusive in the YAML
    assert spec.base_config().epochs == 3
    assert load_spec(Path(GPU), {"data": SUBSET}).gpus_per_trial > 0

    bad = {
        "gemnet": ({"space": {"model": ["schnet", "gemnet"]}}, "unknown model 'gemnet'"),
        "field": ({"space": {"widht": [8, 16]}}, r"space\.widht: not a sweepable MLFF parameter"),
        "range": ({"space": {"lr": {"loguniform": [0.01, 0.001]}}}, "low must be below high"),
        "kind": ({"space": {"lr": {"normal": [0, 1]}}}, r"space\.lr: expected a list"),
        "value": ({"space": {"layers": [0, 1]}}, r"space\.layers: 0: Input should be greater"),
        "top": ({"max_concurrent": 0}, "max_concurrent"),
    }
    for name, (fields, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            load_spec(spec_file(tmp_path, **fields))
        assert name
    with pytest.raises(ConfigError, match="lacks 'space'"):
        load_spec(None)

    from crystalspace.cli import app

    res = CliRunner().invoke(
        app, ["mlff", "tune", "--config", str(spec_file(tmp_path, space={"model": ["x"]}))]
    )
    assert res.exit_code == 2
    assert "unknown model 'x'" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(app, ["mlff", "tune", "--resume", "--out", str(tmp_path / "none")])
    assert res.exit_code == 2
    assert "nothing to resume" in res.output
