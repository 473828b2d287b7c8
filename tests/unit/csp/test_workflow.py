"""CSP (AlphaCrystal-II) workflow on Ray: the GA pool fits beside a pool that holds cores, and the whole
chain at tiny size (train, predict, evaluate, the command line)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _paths import DATA
from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from crystalspace.csp.features import species_of
from crystalspace.csp.ga import GAConfig

TABLE = DATA / "csp_subset" / "mp_binary_le12sites_first300.csv.gz"


def test_ga_pool_fits_beside_a_pool_that_holds_cores(ray_session: object) -> None:
    """More GA actors asked for than CPUs left free (a relaxation pool holds one of the 2): the pool
    shrinks to fit instead of waiting for ever on an actor Ray cannot place (seen on the GPU machine)."""
    import ray

    from crystalspace.csp.workflow import ga_candidates

    @ray.remote(num_cpus=1)
    class Holder:
        def ready(self) -> bool:
            return True

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    s = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    try:
        ga = GAConfig(population=8, generations=3)
        out = ga_candidates(species_of(s), s.lattice, s.distance_matrix, ga, runs=4, n_actors=3)
    finally:
        ray.kill(holder)
    assert len(out) == 4
    assert all(len(st) == 2 for st, _ in out)


@pytest.mark.slow
def test_whole_chain_on_ray(ray_session: object, tmp_path: Path) -> None:
    """Train (Ray Train) -> predict (GA on Ray actors -> CHGNet relax -> rank) -> evaluate vs random search; CLI."""
    from crystalspace.cli import app
    from crystalspace.csp.workflow import (
        CSPConfig,
        default_relaxer,
        evaluate_formulas,
        load,
        load_entries,
        predict,
        train_pipeline,
    )

    torch.set_num_threads(1)
    cfg = CSPConfig.from_dict(
        {
            "limit": 300,
            "table": str(TABLE),
            "train": {
                "n_bins": 10,
                "epochs": 4,
                "net": {"blocks_1d": 2, "filters_1d": 8, "blocks_2d": 2, "filters_2d": 8},
            },
            "ga": {"population": 30, "generations": 20},
            "ga_runs": 4,
            "relax_steps": 3,
            "top_k": 3,
        }
    )
    info = train_pipeline(cfg, tmp_path / "model", tmp_path / "ray")
    assert info["n_train"] > 200
    assert 0 < info["distance"]["rmse"] < 4.0
    assert 0.5 < info["distance"]["overlap"] <= 1.0
    assert info["lattice"]["mae_abc"] < 3.0
    bundle = load(tmp_path / "model")
    relaxer = default_relaxer()
    res = predict(bundle, "Zr4Al3", relaxer, top_k=3, runs=4, ga=cfg.ga, relax_steps=3)
    e = [c["energy_per_atom"] for c in res["candidates"]]
    assert len(e) == 3
    assert e == sorted(e)
    assert all(-12 < x < 0 for x in e)
    assert res["candidates"][0]["structure"].composition.reduced_formula == "Zr4Al3"
    test = [x for x in load_entries(cfg) if x.formula in set(bundle["info"]["test_formulas"])][:1]
    rows = evaluate_formulas(bundle, test, relaxer, cfg)
    assert rows[0]["dm_rmse"] >= 0
    assert "rand_best_rms" in rows[0]
    assert "csp_energy_distance" in rows[0]
    runner = CliRunner()
    r = runner.invoke(app, ["csp", "predict", "Zr4Al3", "--model-dir", str(tmp_path / "nomodel")])
    assert r.exit_code == 2
    assert "csp train" in r.output
    r = runner.invoke(
        app,
        [
            "csp",
            "predict",
            "Zr4Al3",
            "--top-k",
            "2",
            "--runs",
            "2",
            "--relax-steps",
            "2",
            "--model-dir",
            str(tmp_path / "model"),
            "--out",
            str(tmp_path / "cifs"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "cifs").glob("*.cif"))) == 2
    assert "E (eV/atom)" in r.output
