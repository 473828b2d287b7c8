"""MLFF pipeline at CI size on Ray: CHGNet reference data as Ray tasks, the NaN guard, and reference →
train (killed and resumed) → registry → evaluate → MD with the trained model → the study's report."""

from __future__ import annotations

import json
from pathlib import Path

import _paths
import numpy as np
import pytest
from typer.testing import CliRunner

from crystalspace.mlff.config import make_mlff_config
from crystalspace.mlff.data import labelled_rows, load_material
from crystalspace.registry import list_entries, load_entry

DATA = str(_paths.DATA / "mlff_subset")  # 300 frames per material, see README there
SMALL = "pipelines/configs/mlff_small.yaml"


@pytest.mark.slow
def test_reference_with_chgnet_as_ray_tasks(ray_session, tmp_path) -> None:
    from crystalspace.md.reference import generate_reference, load_structures

    structures = load_structures([f"{DATA}/Li3PS4_chgnet_relaxed.cif"])
    paths = generate_reference(structures, [600.0, 900.0], tmp_path, runs=1, steps=4, interval=2)
    table = load_material(tmp_path, "Li3PS4")
    rows = labelled_rows(table)
    assert paths["Li3PS4"].exists()
    assert sorted(set(table["temperature_K"].to_pylist())) == [600, 900]
    assert len(rows) == 6  # steps 0, 2, 4 per temperature
    assert rows[0]["forces"].shape == (48,)
    assert abs(rows[0]["energy"] / 16 + 4.64) < 0.05  # CHGNet's energy of the relaxed cell
    assert np.abs(table["stress"].to_pylist()[0]).max() < 10  # GPa


@pytest.mark.slow
def test_nan_loss_stops_naming_the_batch(ray_session, tmp_path) -> None:
    from crystalspace.mlff.train import train_model
    from crystalspace.training import NonFiniteLossError

    cfg = make_mlff_config(
        SMALL,
        {
            "train_per_temperature": 4,
            "val_per_temperature": 1,
            "epochs": 3,
            "lr": 1e12,
            "data": DATA,
            "out": str(tmp_path / "run"),
            "registry": str(tmp_path / "reg"),
        },
    )
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss .* at epoch \d+ batch \d+ \(training frames \["
    ):
        train_model(cfg)
    assert list_entries(tmp_path / "reg") == []


@pytest.mark.slow
def test_end_to_end_train_resume_registry_evaluate(ray_session, tmp_path) -> None:
    """Ray Train (1 worker) with an injected worker failure → resume → registry → evaluate."""
    from crystalspace.mlff.evaluate import evaluate_models
    from crystalspace.mlff.potential import load_potential
    from crystalspace.mlff.train import train_model
    from crystalspace.potentials import ProviderCalculator

    cfg = make_mlff_config(
        SMALL,
        {
            "train_per_temperature": 24,
            "val_per_temperature": 6,
            "epochs": 5,
            "data": DATA,
            "out": str(tmp_path / "run"),
            "registry": str(tmp_path / "reg"),
        },
    )
    result = train_model(cfg, crash_once_at_epoch=2)
    history = result.history
    assert [r["epoch"] for r in history] == [0, 1, 2, 3, 4]
    assert [r["resumed"] for r in history] == [
        False,
        False,
        True,
        True,
        True,
    ]  # restarted from epoch 1's checkpoint
    maes = [r["val_force_mae"] for r in history]
    assert maes[-1] < maes[0]
    assert min(maes) < 0.85 * maes[0]
    assert result.curve.stat().st_size > 5000
    entry = load_entry(result.entry)
    assert entry.name == "schnet-lgps-v1"
    assert entry.metrics["val_force_mae"] == pytest.approx(min(maes))
    assert "schnet force field trained on LGPS" in entry.card()

    out = tmp_path / "eval"
    table = evaluate_models([result.entry], DATA, ["LGPS", "Li3PS4", "Li4GeS4"], out, n_test=100)
    assert [(r["material"], r["frames"], r["seen"]) for r in table] == [
        ("LGPS", 100, True),
        ("Li3PS4", 100, False),
        ("Li4GeS4", 100, False),
    ]
    lgps = table[0]
    assert lgps["force_mae"] < 1.2 * min(maes)  # unseen LGPS frames behave like validation frames
    assert lgps["force_r2"] > 0.3
    assert (out / "direct_prediction.csv").exists()
    assert all((out / f"parity_{m}.png").stat().st_size > 5000 for m in ("LGPS", "Li3PS4", "Li4GeS4"))

    from crystalspace.cli import app

    res = CliRunner().invoke(
        app,
        [
            "mlff",
            "evaluate",
            str(result.entry),
            "--config",
            SMALL,
            "--set",
            f"data={DATA}",
            "--frames",
            "10",
            "--out",
            str(tmp_path / "cli"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "| schnet-lgps-v1 | Li4GeS4 | 10 |" in res.output
    bad = CliRunner().invoke(app, ["mlff", "evaluate", str(tmp_path / "nope"), "--config", SMALL])
    assert bad.exit_code == 2
    assert "no such registry entry" in bad.output

    # the saved model as an ASE calculator and as the batched MD force provider
    pot = load_potential(result.entry)
    frame = labelled_rows(load_material(DATA, "LGPS").slice(0, 2))
    from crystalspace.atoms.io import row_to_atoms

    atoms = row_to_atoms(frame[0])
    atoms.calc = ProviderCalculator(pot)
    e, f = pot.batched(
        frame[0]["numbers"],
        np.stack([r["positions"].reshape(-1, 3) for r in frame]),
        np.stack([r["cell"].reshape(3, 3) for r in frame]),
    )
    assert e.shape == (2,)
    assert f.shape == (2, 50, 3)
    assert atoms.get_potential_energy() == pytest.approx(float(e[0]), rel=1e-5)
    np.testing.assert_allclose(atoms.get_forces(), f[0].numpy(), atol=1e-4)
    assert atoms.get_stress().shape == (6,)
    assert json.loads((result.entry / "config.json").read_text())["conservative"] is True
    _md_with_trained_model(str(result.entry), tmp_path / "md")


def _md_with_trained_model(entry: str, out: Path) -> None:
    """Issue #5 in CI: the CI-trained model runs MD replicas on 2 Ray actors, one actor dies and
    resumes from its checkpoint, then the analysis and the study's report run on the trajectories."""
    from ase.io import read

    from crystalspace.md.actors import run_md
    from crystalspace.md.analysis import load_trajectories
    from crystalspace.md.replicas import MDProtocol
    from crystalspace.md.report import build_report, load_model

    protocol = MDProtocol(
        ramp_ps=0.04, production_ps=0.4, checkpoint_every=40, record_every=5, record_every_ramp=5
    )
    structure = read(f"{DATA}/Li3PS4_chgnet_relaxed.cif")
    summary = run_md({"Li3PS4": structure}, [800.0, 1200.0], 2, out / "traj", protocol, provider=entry,
                     actors_per_material=2, crash_at_step=100)  # fmt: skip
    assert (out / "traj" / ".crashed-Li3PS4-a0").exists()  # the first actor really died once
    assert [r["status"] for r in summary] == ["ok"] * 4, summary
    frames = load_trajectories(out / "traj")
    for _, g in frames.groupby("replica"):
        steps = np.sort(g.step.to_numpy())
        assert steps[0] == 0
        assert steps[-1] == protocol.n_steps
        assert set(np.diff(steps)) == {5}  # no gap, no duplicate frame after the restart
    info = json.loads((out / "traj" / "model.json").read_text())
    assert info["arch"] == "schnet"
    assert info["symmetry"] == "E(3)-invariant"
    assert info["parameters"] > 1000
    reference = load_trajectories(_paths.DATA / "md_reference" / "Li3PS4.parquet")
    reference = reference[reference.temperature_K.isin([800, 1200])]
    tables = build_report(reference, [load_model("schnet-ci", [out / "traj"])], out / "report",
                          fit_ps=(0.08, 0.3), rdf_frames=10)  # fmt: skip
    assert tables["models"].parameters.iloc[0] == info["parameters"]
    assert tables["errors"].verdict.iloc[0] in {"stable", "unstable"}
    assert tables["conductivity"].neg_log10_sigma_300K.notna().all()
    for name in (
        "models.md",
        "conductivity.md",
        "errors.md",
        "rdf_Li3PS4.png",
        "msd_Li3PS4.png",
        "arrhenius.png",
    ):
        assert (out / "report" / name).stat().st_size > 100, name
