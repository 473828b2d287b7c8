"""Analysis reproduces the reference dataset's D_Li and Ea; RDF verdicts; report and CLI outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _paths import DATA, SHARED
from typer.testing import CliRunner

from crystalspace.cli import app
from crystalspace.md import analysis as an
from crystalspace.md.report import build_report, seed_split

SUBSET = DATA / "md_reference"  # committed, every 4th production frame
LABELLED = DATA / "mlff_subset"  # committed frames with energies and forces
REF = Path(os.environ.get("CRYSTALSPACE_MD_REFERENCE", SHARED / "data" / "mlff_reference"))
# the reference README's sanity table: D_Li mean (cm²/s) per material and T, and Arrhenius Ea
README_D = {
    "LGPS": [7.7e-05, 9.6e-05, 1.32e-04, 1.48e-04, 1.69e-04],
    "Li3PS4": [1.10e-04, 1.42e-04, 1.66e-04, 1.73e-04, 3.33e-04],
    "Li4GeS4": [6.2e-05, 6.7e-05, 1.11e-04, 1.15e-04, 1.19e-04],
}
README_EA = {"LGPS": 0.17, "Li3PS4": 0.19, "Li4GeS4": 0.15}
COLUMNS = ["material", "temperature_K", "run", "step", "time_fs", "phase", "numbers", "positions",
           "unwrapped_positions", "cell", "temperature_inst_K"]  # fmt: skip


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    """The full reference trajectories where ``../shared`` is present, else the committed subset
    (every 4th frame; wrapped positions rebuilt from the unwrapped ones). ``attrs["full"]`` says which."""
    import pyarrow.parquet as pq

    full = (REF / "LGPS.parquet").is_file()
    if full:
        frames = [pq.read_table(f"{REF}/{m}.parquet", columns=COLUMNS).to_pandas() for m in README_D]
    else:
        frames = [pq.read_table(SUBSET / f"{m}.parquet").to_pandas() for m in README_D]
    df = pd.concat(frames, ignore_index=True)
    if not full:
        df["positions"] = [_wrapped(u, c) for u, c in zip(df.unwrapped_positions, df.cell, strict=True)]
    df.attrs["full"] = full
    return df


def _wrapped(unwrapped: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Positions folded back into the cell (what the trajectory stores as ``positions``)."""
    lattice = np.asarray(cell, float).reshape(3, 3)
    frac = np.asarray(unwrapped, float).reshape(-1, 3) @ np.linalg.inv(lattice)
    return ((frac - np.floor(frac)) @ lattice).astype(np.float32).ravel()


def test_msd_fft_equals_explicit_loop():
    x = np.cumsum(np.random.default_rng(0).normal(size=(60, 5, 3)), axis=0)
    explicit = [np.mean(np.sum((x[k:] - x[: len(x) - k]) ** 2, -1)) for k in range(1, 30)]
    assert an.msd_fft(x)[1:30] == pytest.approx(explicit, rel=1e-10)


def test_ci_subset_reproduces_reference_diffusivities():
    """Every 4th frame (80 fs) still gives the README's D_Li to 2 % and its Ea to 0.01 eV."""
    import pyarrow.parquet as pq

    frames = pd.concat(
        [pq.read_table(SUBSET / f"{m}.parquet").to_pandas() for m in README_D], ignore_index=True
    )
    summary = an.summarize_diffusion(an.diffusion_table(frames))
    for mat, expected in README_D.items():
        got = summary[summary.material == mat].sort_values("temperature_K")
        assert got.D_mean.to_numpy() == pytest.approx(expected, rel=0.02)
        assert round(an.arrhenius_fit(summary, mat).ea_eV, 2) == README_EA[mat]


def test_reproduces_reference_diffusivities_and_activation_energies(reference):
    table = an.diffusion_table(reference)
    assert not table.warnings.any()
    summary = an.summarize_diffusion(table)
    for mat, expected in README_D.items():
        got = summary[summary.material == mat].sort_values("temperature_K")
        # the README prints 2-3 significant figures; run-to-run scatter is 20-50 %; every 4th frame
        # (the committed subset) moves D by up to 2 %
        assert got.D_mean.to_numpy() == pytest.approx(expected, rel=0.01 if reference.attrs["full"] else 0.02)
        assert (got.n_runs == 3).all()
        fit = an.arrhenius_fit(summary, mat)
        assert round(fit.ea_eV, 2) == README_EA[mat]
        assert 0 < fit.ea_err_eV < fit.ea_eV
        assert np.isfinite(fit.neg_log10_sigma_room)
        assert fit.neg_log10_sigma_room_err > 0


def test_discarding_and_short_runs_warn(reference):
    lgps = reference[(reference.material == "LGPS") & (reference.temperature_K == 800) & (reference.run == 0)]
    table = an.diffusion_table(lgps, discard_ps=8.0)  # 2 ps left: lags ≤ 1 ps, below the 1-5 ps window
    assert "too short" in table.warnings.iloc[0]
    with pytest.warns(an.AnalysisWarning):
        an.warn_all(table)
    frozen = lgps.copy()
    frozen["unwrapped_positions"] = [lgps.unwrapped_positions.iloc[0]] * len(lgps)
    assert "too flat" in an.diffusion_table(frozen).warnings.iloc[0]


def test_rdf_verdicts(reference):
    prod = an.production(reference[(reference.material == "LGPS") & (reference.temperature_K == 800)])
    r0, r1 = (
        an.frames_rdf(prod[prod.run == 0], max_frames=20),
        an.frames_rdf(prod[prod.run == 1], max_frames=20),
    )
    assert an.stability_verdict(r1, r0)[:2] == ("stable", "")
    assert r0.partial["Li-S"][r0.r < 1.5].max() == 0
    assert abs(r0.total[-20:].mean() - 1) < 0.15
    g = prod[prod.run == 1].iloc[::25]
    z = np.asarray(g.numbers.iloc[0])
    pos = np.stack(g.positions.to_numpy()).reshape(len(g), -1, 3).astype(float)
    cell = np.asarray(g.cell.iloc[0]).reshape(3, 3)
    expanded = an.rdf(pos * 1.12, z, cell * 1.12)
    assert an.stability_verdict(expanded, r0)[:2] == ("unstable", "lattice mismatch")
    pos[:, 1] = pos[:, 0] + 0.5  # two atoms on top of each other
    assert an.stability_verdict(an.rdf(pos, z, cell), r0)[:2] == ("unstable", "atom fusion")


def test_report_on_reference_seeds(reference, tmp_path):
    small = reference[(reference.material == "Li3PS4") & reference.temperature_K.isin([800, 1000, 1200])]
    ref, models = seed_split(small)
    tables = build_report(ref, models, tmp_path, rdf_frames=15, rdf_reference=ref[ref.run == 0])
    for name in [
        "models.csv",
        "models.md",
        "conductivity.csv",
        "conductivity.md",
        "errors.csv",
        "errors.md",
        "diffusion.csv",
        "rdf_Li3PS4.png",
        "msd_Li3PS4.png",
        "arrhenius.png",
        "force_vs_rdf.png",
    ]:
        assert (tmp_path / name).stat().st_size > 100, name
    assert list(tables["errors"].verdict) == ["stable", "stable"]
    cond = tables["conductivity"]
    assert len(cond) == 3
    assert cond.neg_log10_sigma_300K.notna().all()


def test_report_stop_marks_only_its_own_material(reference, tmp_path):
    """A replica stopped for atom fusion makes its own material unstable, not the model's others."""
    small = reference[
        reference.material.isin(["Li3PS4", "Li4GeS4"]) & reference.temperature_K.isin([1000, 1200])
    ]
    ref, models = seed_split(small)
    fused = {"material": "Li3PS4", "temperature_K": 1200.0, "reason": "atom_fusion (d_min 0.52 Å)"}
    models[0].info["stopped"] = [fused]
    errors = build_report(ref, models[:1], tmp_path, rdf_frames=10, rdf_reference=ref[ref.run == 0])["errors"]
    verdicts = dict(zip(errors.material, zip(errors.verdict, errors.failure_mode, strict=True), strict=True))
    assert verdicts == {"Li3PS4": ("unstable", "atom fusion"), "Li4GeS4": ("stable", "")}


def test_cli_analyze_and_errors(tmp_path):
    data = REF if (REF / "Li4GeS4.parquet").is_file() else SUBSET
    runner = CliRunner()
    res = runner.invoke(app, ["md", "analyze", f"{data}/Li4GeS4.parquet", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "Li4GeS4: Ea = 0.154" in res.output
    assert (tmp_path / "arrhenius.csv").is_file()
    bad = runner.invoke(app, ["md", "analyze", str(tmp_path / "missing.parquet")])
    assert bad.exit_code == 2
    assert "no such trajectory" in bad.output
    bad = runner.invoke(app, ["md", "report", "--reference", f"{data}/Li4GeS4.parquet"])
    assert bad.exit_code == 2
    assert "nothing to compare" in bad.output
    # the name for it: `mlff report` (the study judges force fields by their MD)
    rep = tmp_path / "report"
    res = runner.invoke(app, ["mlff", "report", "--reference", f"{SUBSET}/Li4GeS4.parquet", "--split-seeds",
                              "--rdf-frames", "10", "--out", str(rep)])  # fmt: skip
    assert res.exit_code == 0, res.output
    for name in ("models.md", "conductivity.md", "errors.md", "rdf_Li4GeS4.png", "arrhenius.png"):
        assert (rep / name).stat().st_size > 100, name


def test_msd_matches_pymatgen_analysis_diffusion(reference):
    import warnings

    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer

    from crystalspace.atoms.io import atoms_to_structure, row_to_atoms

    prod = an.production(reference)
    g = prod[(prod.material == "LGPS") & (prod.temperature_K == 1000) & (prod.run == 0)].sort_values("step")
    u = np.stack(g.unwrapped_positions.to_numpy()).reshape(len(g), -1, 3).astype(float)
    structure = atoms_to_structure(row_to_atoms(g.iloc[0].to_dict()))
    frame_fs = float(g.time_fs.iloc[1] - g.time_fs.iloc[0])  # 20 fs (full data), 80 fs (subset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        da = DiffusionAnalyzer(
            structure, (u - u[0]).transpose(1, 0, 2), "Li", 1000, 2, round(frame_fs / 2), smoothed="max"
        )
    ours = an.run_diffusion(g)
    lag = (da.dt / frame_fs).round().astype(int)
    inside = lag < len(ours.msd)
    # pymatgen removes the unweighted framework drift, we the mass-weighted centre of mass: ~3 % apart
    assert da.msd[inside] == pytest.approx(ours.msd[lag[inside]], rel=0.05)
    assert da.diffusivity == pytest.approx(ours.d_cm2_s, rel=0.1)


def test_force_mae_of_providers():
    import pyarrow.parquet as pq

    from crystalspace.potentials.pair import PairPotential

    labelled = LABELLED / "Li3PS4.parquet"  # frames with CHGNet forces (committed)
    li3ps4 = pq.read_table(labelled).to_pandas()
    mae = an.force_mae(PairPotential(), li3ps4, max_frames=8)
    assert set(mae) == {"Li3PS4"}
    assert 0.05 < mae["Li3PS4"] < 5.0  # a toy potential is far from CHGNet, but finite
