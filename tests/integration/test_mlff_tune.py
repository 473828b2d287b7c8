"""``crystalspace mlff tune`` on Ray: a CI-size ASHA sweep that is interrupted and resumed, and a sweep
with a diverging trial and the short-MD stability score (the sweep specs: tests/unit/tune/test_spec.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _tune import SMALL, spec_file
from typer.testing import CliRunner

from crystalspace.mlff.config import make_mlff_config
from crystalspace.tune import load_spec, run_sweep


@pytest.mark.slow
def test_asha_sweep_interrupted_and_resumed(ray_session, tmp_path) -> None:
    """8 trials on 2 CPUs: ASHA stops some, the run stops after 3 trials, ``--resume`` finishes it."""
    spec = load_spec(Path(SMALL), out=str(tmp_path / "out"), name="ci")
    first = run_sweep(spec, stop_after=3)
    assert not first.complete
    done = first.table[first.table.status.isin(["completed", "stopped early"])]
    assert len(done) >= 3
    assert (first.table.status == "pending").any()
    results = {r.trial: (Path(r.path) / "result.json").read_bytes() for r in done.itertuples()}
    midway = first.table[(first.table.status == "unfinished") & (first.table.epochs > 0)].trial.tolist()

    from crystalspace.cli import app

    res = CliRunner().invoke(app, ["mlff", "tune", "--resume", "--out", spec.out, "--name", "ci"])
    assert res.exit_code == 0, res.output
    assert "best: trial" in res.output
    table = pd.read_parquet(Path(spec.out) / "tune_results.parquet")
    assert len(table) == 8
    assert set(table.status) <= {"completed", "stopped early"}, table.status.tolist()
    for trial, before in results.items():  # finished trials were not run again
        row = table[table.trial == trial].iloc[0]
        assert (Path(row.path) / "result.json").read_bytes() == before, trial

    # ASHA really stopped trials, and only ones that were behind at their last rung
    stopped = table[table.status == "stopped early"]
    assert len(stopped) >= 2
    assert (stopped.epochs < 3).all()
    assert (table.status == "completed").sum() >= 1
    history = pd.read_parquet(Path(spec.out) / "tune_history.parquet")
    assert set(history.trial) == set(table.trial)
    assert history.groupby("trial").epoch.apply(lambda e: sorted(e) == list(range(len(e)))).all()
    for trial in midway:  # a trial stopped mid-way went on from its last epoch, not from scratch
        assert history[history.trial == trial].epoch.is_unique, trial
    for row in stopped.itertuples():
        at = history[history.epoch == row.epochs - 1].set_index("trial").val_force_mae
        assert at[row.trial] > at.min(), row.trial

    best = table.iloc[0]
    assert best["rank"] == 1
    assert best.val_force_mae == pytest.approx(table.val_force_mae.min())
    assert best.val_force_mae == pytest.approx(history[history.trial == best.trial].val_force_mae.min())
    cfg = make_mlff_config(Path(spec.out) / "best_config.yaml")
    assert (cfg.model, cfg.hidden, cfg.layers) == (best.model, best.hidden, best.layers)
    assert cfg.lr == pytest.approx(best.lr)
    assert (Path(spec.out) / "tune_results.csv").exists()
    assert (Path(spec.out) / "tune_sweep.png").stat().st_size > 20_000
    res = CliRunner().invoke(app, ["mlff", "tune", "--config", SMALL, "--out", spec.out, "--name", "ci"])
    assert res.exit_code == 2
    assert "exists: continue it with --resume" in res.output


@pytest.mark.slow
def test_diverging_trial_and_md_stability_score(ray_session, tmp_path) -> None:
    """A NaN trial is recorded as failed while the sweep goes on; a finished one gets an MD score."""
    spec = load_spec(
        spec_file(
            tmp_path,
            space={"model": "schnet", "hidden": 8, "layers": 1, "cutoff": 4.0, "lr": [1e12, 0.003]},
            num_samples=1,
            stability={"enabled": True, "steps": 40, "record_every": 4, "weight": 10.0, "rdf_frames": 20},
        ),
        {"epochs": 2},
        out=str(tmp_path / "out"),
        name="md",
    )
    result = run_sweep(spec)
    assert result.complete
    table = result.table.set_index("lr")
    failed, good = table.loc[1e12], table.loc[0.003]
    assert failed.status == "failed"
    assert "non-finite loss" in failed.reason
    assert math.isnan(failed.objective)
    assert good.status == "completed"
    assert good.md_verdict in {"stable", "unstable"}
    assert 0 < good.rdf_mae < 1
    assert good.objective == pytest.approx(good.val_force_mae + 10.0 * good.rdf_mae)
    assert good["rank"] == 1
    assert np.isnan(failed["rank"])
