"""MLFF pipeline: graphs, registry, bad input, and a CI-sized reference → train → registry → evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from typer.testing import CliRunner

from crystalspace.atoms.graph import neighbor_list
from crystalspace.atoms.io import StructureError
from crystalspace.config import ConfigError
from crystalspace.mlff.config import make_mlff_config
from crystalspace.mlff.data import labelled_rows, load_material, split_frames
from crystalspace.mlff.ingest import ingest
from crystalspace.registry import RegistryError, list_entries, load_entry, save_entry

DATA = str(Path(__file__).parent / "data" / "mlff_subset")  # 300 frames per material, see README there
SMALL = "pipelines/configs/mlff_small.yaml"


def test_neighbor_list_small_cell_images_and_cap() -> None:
    from ase.neighborlist import neighbor_list as ase_nl

    atoms = bulk("Li", "bcc", a=3.45)  # one atom, cell far below the cutoff
    edge_index, shift = neighbor_list(atoms.positions, atoms.cell[:], cutoff=6.0, max_neighbors=None)
    i, _ = ase_nl("ij", atoms, 6.0)
    assert edge_index.shape[1] == len(i) > 50
    assert (edge_index == 0).all()
    assert shift.abs().sum(1).min() > 0  # every neighbour is a periodic image
    capped, _ = neighbor_list(atoms.positions, atoms.cell[:], cutoff=6.0, max_neighbors=14)
    assert capped.shape[1] == 14  # the 8 + 6 nearest (bcc first and second shells)
    with pytest.raises(StructureError, match="degenerate cell"):
        neighbor_list(atoms.positions, np.zeros((3, 3)))


def test_registry_roundtrip_and_errors(tmp_path) -> None:
    state = {"w": torch.arange(3.0)}
    path = save_entry(tmp_path, "schnet", "lgps", state, {"hparams": {"hidden": 8}}, {"mae": 0.1}, "# card")
    assert path.name == "schnet-lgps-v1"
    entry = load_entry("schnet-lgps-v1", root=tmp_path)
    assert entry.config["arch"] == "schnet"
    assert entry.metrics == {"mae": 0.1}
    assert torch.equal(entry.state_dict()["w"], state["w"])
    assert save_entry(tmp_path, "schnet", "lgps", state, {}, {}, "").name == "schnet-lgps-v2"
    with pytest.raises(RegistryError, match="exists"):
        save_entry(tmp_path, "schnet", "lgps", state, {}, {}, "", version="v1")
    with pytest.raises(RegistryError, match="not JSON"):
        save_entry(tmp_path, "schnet", "lgps", state, {}, {"bad": object()}, "", version="v9")
    assert not (tmp_path / "schnet-lgps-v9").exists()
    assert [e.name for e in list_entries(tmp_path)] == ["schnet-lgps-v1", "schnet-lgps-v2"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(RegistryError, match="incomplete registry entry"):
        load_entry(tmp_path / "broken")
    with pytest.raises(RegistryError, match="no such registry entry"):
        load_entry("nope-nope-v1", root=tmp_path)


def test_ingest_extxyz_and_bad_input(tmp_path) -> None:
    frames = []
    for k in range(3):
        a = bulk("Li", "bcc", a=3.45, cubic=True)
        a.rattle(0.05, seed=k)
        a.calc = SinglePointCalculator(a, energy=-3.0 - k, forces=np.full((2, 3), 0.1 * k))
        frames.append(a)
    write(tmp_path / "md.extxyz", frames)
    n = ingest([tmp_path / "md.extxyz"], tmp_path / "li.parquet", material="Li")
    table = pq.read_table(tmp_path / "li.parquet")
    assert n == table.num_rows == 3
    assert table["energy"].to_pylist() == [-3.0, -4.0, -5.0]
    assert table["material"].to_pylist() == ["Li"] * 3
    (tmp_path / "junk.xml").write_text("<modeling><not vasp")
    with pytest.raises(StructureError, match=r"junk\.xml: cannot parse"):
        ingest([tmp_path / "junk.xml"], tmp_path / "junk.parquet")
    write(tmp_path / "POSCAR", bulk("Li", "bcc", a=3.45), format="vasp")
    with pytest.raises(StructureError, match="no energy/forces"):
        ingest([tmp_path / "POSCAR"], tmp_path / "nolabels.parquet")
    overlap = Atoms("Li2", positions=[[0, 0, 0], [0.1, 0, 0]], cell=[5, 5, 5], pbc=True)
    overlap.calc = SinglePointCalculator(overlap, energy=0.0, forces=np.zeros((2, 3)))
    write(tmp_path / "overlap.extxyz", overlap)
    with pytest.raises(StructureError, match="overlap"):
        ingest([tmp_path / "overlap.extxyz"], tmp_path / "overlap.parquet")
    assert not (tmp_path / "junk.parquet").exists()
    assert not (tmp_path / "nolabels.parquet").exists()
    assert not (tmp_path / "overlap.parquet").exists()


def test_splits_and_missing_forces() -> None:
    table = load_material(DATA, "Li3PS4")
    split = split_frames(table, 20, 5, 50, seed=0)
    temps = np.asarray(table["temperature_K"].to_numpy())
    assert len(split.train) == 100
    assert len(split.val) == 25
    assert len(split.test) == 50
    assert set(np.unique(temps[split.train], return_counts=True)[1]) == {20}  # per temperature
    assert not set(split.train) & set(split.val)
    assert not set(split.test) & (set(split.train) | set(split.val))
    broken = table.slice(0, 4)
    forces = pa.array([None, *broken["forces"].to_pylist()[1:]], broken["forces"].type)
    nulls = broken.set_column(broken.column_names.index("forces"), "forces", forces)
    with pytest.raises(StructureError, match="lacks forces"):
        labelled_rows(nulls, name="x")
    with pytest.raises(StructureError, match="no reference data"):
        load_material(DATA, "Unobtainium")
    with pytest.raises(ConfigError, match="epochs"):
        make_mlff_config(None, {"epochs": "0"})


def test_cli_unknown_model_is_one_line() -> None:
    from crystalspace.cli import app

    res = CliRunner().invoke(app, ["mlff", "train", "--model", "gemnet", "--config", SMALL])
    assert res.exit_code == 2
    assert "unknown model 'gemnet'" in res.output
    assert "Traceback" not in res.output


@pytest.mark.slow
@pytest.mark.integration
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
@pytest.mark.integration
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
@pytest.mark.integration
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
    assert info["symmetry"] == "invariant"
    assert info["parameters"] > 1000
    reference = load_trajectories(Path(__file__).parent / "data" / "md_reference" / "Li3PS4.parquet")
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


def test_training_helpers(tmp_path) -> None:
    from crystalspace.training import Budget, NonFiniteLossError, check_finite, plot_learning_curves

    assert Budget(None).expired() is False
    assert Budget(10.0, already=11.0).expired() is True
    assert Budget(10.0, already=0.0).expired() is False
    check_finite(torch.tensor(1.5), "epoch 0 batch 0")
    with pytest.raises(NonFiniteLossError, match="at epoch 3 batch 7"):
        check_finite(torch.tensor(float("inf")), "epoch 3 batch 7")
    history = [{"epoch": e, "val_force_mae": 1.0 / (e + 1), "val_force_r2": 0.5 + 0.1 * e} for e in range(4)]
    png = plot_learning_curves(history, tmp_path / "curve.png", ["val_force_mae", "val_force_r2", "absent"])
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def test_batched_provider_accepts_flat_positions_and_checks_shapes() -> None:
    from crystalspace.mlff.models import build_model
    from crystalspace.mlff.potential import Potential

    torch.manual_seed(0)
    pot = Potential(build_model("painn", cutoff=4.0, hidden=8, layers=1))
    rows = labelled_rows(load_material(DATA, "Li3PS4").slice(0, 3))
    pos = np.stack([r["positions"].reshape(-1, 3) for r in rows])
    cell = np.stack([r["cell"].reshape(3, 3) for r in rows])
    e1, f1 = pot.batched(rows[0]["numbers"], pos, cell)
    e2, f2 = pot.batched(rows[0]["numbers"], pos.reshape(-1, 3), cell)  # (R·N, 3) works too
    assert torch.allclose(e1, e2)
    assert torch.allclose(f1, f2)
    e, f, s = pot.batched(rows[0]["numbers"], pos, cell, stress=True)
    assert torch.allclose(f, f1, atol=1e-5)
    assert s.shape == (3, 3, 3)
    assert torch.allclose(e, e1, atol=1e-5)
    with pytest.raises(StructureError, match="cell must be"):
        pot.batched(rows[0]["numbers"], pos, cell[:2])
