"""CSP (AlphaCrystal-II) pipeline: pieces against pymatgen, and the whole chain at tiny size on Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from crystalspace.csp.data import CSPDataError, read_table, split_by_formula
from crystalspace.csp.features import FEATURES, Standardiser, element_features, encode, species_of
from crystalspace.csp.ga import GAConfig, mismatch, pair_groups, run_ga
from crystalspace.csp.model import DistanceNet, NetConfig
from crystalspace.csp.target import Bins, batch_distances, distance_matrix, metrics, pair_mask

TABLE = Path(__file__).parent / "data/csp_subset/mp_binary_le12sites_first300.csv.gz"


@pytest.fixture(scope="module")
def entries() -> list:
    return read_table(TABLE, max_atoms=12, limit=300)


def test_dataset_split_has_no_shared_formula(entries: list) -> None:
    assert all(len(e.structure) <= 12 for e in entries)
    train, test = split_by_formula(entries, 0.2)
    assert {e.formula for e in train}.isdisjoint({e.formula for e in test})
    assert len(train) + len(test) == len(entries)
    with pytest.raises(CSPDataError):
        read_table("/nonexistent.csv")


def test_features_and_encoding() -> None:
    f = element_features(8)  # oxygen
    assert len(f) == len(FEATURES) == 11
    assert f[-1] == 8
    assert f[8] == 2
    assert abs(f[9] - 3.44) < 1e-6
    std = Standardiser.fit([8, 12, 40, 13])
    x, m = encode(species_of("Zr4Al3"), std)
    assert x.shape == (12, 11)
    assert m.sum() == 7
    assert not x[7:].any()


def test_distances_match_pymatgen_and_bins() -> None:
    s = Structure(
        Lattice.from_parameters(3.1, 4.2, 5.3, 80, 95, 110),
        ["Na", "Cl", "Cl"],
        [[0, 0, 0], [0.5, 0.4, 0.3], [0.9, 0.1, 0.6]],
    )
    d = batch_distances(s.frac_coords[None], s.lattice.matrix)[0]
    np.testing.assert_allclose(d, s.distance_matrix, atol=1e-6)
    dm = distance_matrix(s)
    assert dm.shape == (12, 12)
    assert np.allclose(dm[:3, :3], s.distance_matrix)
    mask = pair_mask(np.array([True] * 3 + [False] * 9))
    b = Bins.fit(dm, mask, 5)
    idx = b.index(dm[mask])
    assert idx.min() == 0
    assert idx.max() == 4
    assert metrics(dm, dm, mask) == {"mse": 0.0, "rmse": 0.0, "overlap": 1.0}


def test_network_symmetric_and_widths() -> None:
    torch.manual_seed(0)
    net = DistanceNet(
        NetConfig(n_out=5, blocks_1d=3, filters_1d=4, blocks_2d=3, filters_2d=4, double_every=2)
    ).eval()
    out = net(torch.randn(2, 12, 11), torch.ones(2, 12, dtype=torch.bool))
    assert out.shape == (2, 5, 12, 12)
    assert torch.allclose(out, out.transpose(2, 3))
    assert net.net2[-1].body[0].out_channels == 8  # doubled after 2 blocks


def test_ga_recovers_a_known_structure() -> None:
    s = Structure(
        Lattice.cubic(4.2),
        ["Na"] * 4 + ["Cl"] * 4,
        [
            [0, 0, 0],
            [0.5, 0.5, 0],
            [0.5, 0, 0.5],
            [0, 0.5, 0.5],
            [0.5, 0, 0],
            [0, 0.5, 0],
            [0, 0, 0.5],
            [0.5, 0.5, 0.5],
        ],
    )
    zs = species_of(s)
    groups = pair_groups(zs)
    d = s.distance_matrix
    assert mismatch(d[None], d, groups)[0] < 1e-9
    perm = np.array([1, 0, 3, 2, 7, 6, 5, 4])  # permutation within elements is free
    assert mismatch(d[perm][:, perm][None], d, groups)[0] < 1e-9
    _, fit = run_ga(zs, s.lattice, d, GAConfig(population=80, generations=150), seed=1)
    rand = mismatch(batch_distances(np.random.default_rng(0).random((50, 8, 3)), s.lattice.matrix), d, groups)
    assert fit < 0.5 * np.median(rand)


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
