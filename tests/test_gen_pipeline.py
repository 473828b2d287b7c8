"""The iMatGen pipeline end to end at tiny size on Ray: data, energies (resumed), Ray Train,
sampling through the CLI, evaluation tables; plus the sampling/post-processing pieces."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pymatgen.core import Composition, Lattice, Structure
from typer.testing import CliRunner

from crystalspace.cli import app
from crystalspace.gen.config import make_gen_config
from crystalspace.gen.sample import postprocess, slerp, v_oxidation_state

SUBSET = Path(__file__).parent / "data" / "gen_subset"
TINY = {
    "source": str(SUBSET / "mp_binary_docs.jsonl.gz"),
    "mp_formulas": str(SUBSET / "mp_ids_union_VO.csv.gz"),
    "limit": 60,
    "energy_chunk": 24,
    "cell_grid": 8,
    "basis_grid": 16,
    "train": {
        "cell_latent": 8,
        "basis_latent": 16,
        "vae_latent": 8,
        "vae_hidden": 64,
        "width": 4,
        "epochs_cell": 2,
        "epochs_basis": 2,
        "epochs_vae": 20,
        "batch_size": 16,
    },
    "n_samples": 40,
    "reconstruct_max": 10,
    "relax_max": 2,
    "relax_steps": 5,
    "baseline_budget": 10,
}


def test_slerp_stays_on_the_arc():
    z0, z1 = np.array([2.0, 0.0]), np.array([0.0, 2.0])
    assert np.allclose(slerp(z0, z1, 0.0), z0)
    assert np.allclose(slerp(z0, z1, 1.0), z1)
    for t in (0.25, 0.5):
        p = slerp(z0, z1, t)
        assert np.isclose(np.linalg.norm(p), 2.0)  # on the arc, not the chord
        assert np.isclose(np.arctan2(p[1], p[0]), t * np.pi / 2)


def test_config_reads_exponent_floats(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-5 as a string; a β sweep written that way must get numbers.
    f = tmp_path / "gen.yaml"
    f.write_text("train:\n  beta: 1e-5\n  epochs_vae: 300\n")
    cfg = make_gen_config(f, {"train.lr": "3E-4", "train.autoencoders_from": "gen/model1e-5", "limit": "1e3"})
    assert cfg.train["beta"] == 1e-5
    assert cfg.train["lr"] == 3e-4
    assert cfg.train["epochs_vae"] == 300
    assert cfg.train["autoencoders_from"] == "gen/model1e-5"
    assert cfg.limit == 1000


def test_vae_loss_weights_the_cell_code_and_counts_and_lr_decays():
    import torch

    from crystalspace.gen.models import vae_loss
    from crystalspace.gen.train import _cosine

    x = torch.zeros(4, 10)
    recon = x.clone()
    recon[:, :2] = 1.0  # error only in the "cell" numbers
    out = (recon, torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4))
    stable = torch.ones(4)
    flat, parts = vae_loss(x, out, stable, beta=0.0, gamma=0.0)
    assert np.isclose(parts["rec"], 0.2)
    ones, _ = vae_loss(x, out, stable, 0.0, 0.0, torch.ones(10))
    assert torch.isclose(ones, flat)
    w = torch.ones(10)
    w[:2] = 10.0
    weighted, _ = vae_loss(x, out, stable, 0.0, 0.0, w)
    assert np.isclose(weighted.item(), 20 / 28)  # normalised by the mean weight
    # Errors outside the weighted block count less than unweighted.
    recon2 = x.clone()
    recon2[:, 5:] = 1.0
    assert (
        vae_loss(x, (recon2, *out[1:]), stable, 0.0, 0.0, w)[0]
        < vae_loss(x, (recon2, *out[1:]), stable, 0.0, 0.0)[0]
    )

    from crystalspace.gen.train import TrainSettings, vae_weights

    # [cell code (4) | basis codes | counts (2)]
    w = vae_weights(TrainSettings(cell_latent=4, cell_weight=30, count_weight=10), 12, 2)
    assert w.tolist() == [30.0] * 4 + [1.0] * 6 + [10.0] * 2

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = _cosine(opt, 10, 0.01)
    lrs = []
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert np.isclose(lrs[-1], 1e-5)


def test_cyclic_cells_are_the_same_crystal_in_another_cell():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from crystalspace.gen.images import ImageSpec
    from crystalspace.gen.train import cyclic_cells

    s = Structure(
        Lattice.from_parameters(3.0, 4.0, 5.5, 80, 95, 110),
        ["V", "O", "O"],
        [[0, 0, 0], [0.3, 0.1, 0.6], [0.7, 0.5, 0.2]],
    )
    none, _ = cyclic_cells([s], np.array([0]), 1, ImageSpec())
    assert none == []  # one setting: the stored cells only
    extra, origin = cyclic_cells([s, s.copy()], np.array([1]), 3, ImageSpec())
    assert list(origin) == [1, 1]
    assert np.array([t.lattice.abc for t in extra]) == pytest.approx(np.array([(4, 5.5, 3), (5.5, 3, 4)]))
    assert np.array([t.lattice.angles for t in extra]) == pytest.approx(
        np.array([(95, 110, 80), (110, 80, 95)])
    )
    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False)
    assert all(matcher.fit(s, t) for t in extra)


def test_postprocess_merges_overlaps_under_pbc():
    lat = Lattice.cubic(6.0)
    s = Structure(lat, ["V", "V", "O", "O"], [[0.01, 0, 0], [0.99, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.72]])
    heights = np.array([1.0, 0.8, 0.9, 0.7])
    out = postprocess(s, heights, {("V", "V"): 2.2, ("O", "O"): 2.2, ("O", "V"): 1.4})
    # V pair 0.12 Å apart across the boundary merges; the O pair (1.32 Å) merges too.
    assert out.composition.get_el_amt_dict() == {"V": 1.0, "O": 1.0}
    assert v_oxidation_state(out) == 2.0


@pytest.mark.slow
@pytest.mark.integration
def test_pipeline_end_to_end(ray_session, tmp_path, monkeypatch):
    from crystalspace.gen import sample, workflow

    monkeypatch.setattr(sample, "DECODE_BLOCK", 16)  # 40 samples decode in 3 blocks of images

    cfg = make_gen_config(
        None,
        {
            **{k: json.dumps(v) if isinstance(v, dict) else v for k, v in TINY.items()},
            "data_dir": str(tmp_path / "data"),
            "model_dir": str(tmp_path / "model"),
            "out_dir": str(tmp_path / "out"),
        },
    )
    runner = CliRunner()
    # No model yet: one clear line, exit status 2.
    res = runner.invoke(app, ["gen", "sample", "--n", "5", "--set", f"model_dir={cfg.model_dir}"])
    assert res.exit_code == 2
    assert "no trained model" in res.output

    from crystalspace.gen.dataset import build_vo_dataset, label_energies

    counts = build_vo_dataset(cfg.data_dir, cfg.source, cfg.limit)
    assert counts["sources"] == 60
    assert counts["structures"] == 2 * counts["sources_kept"] > 60
    table = pq.read_table(tmp_path / "data" / "structures.parquet")
    numbers = {z for row in table.column("numbers").to_pylist() for z in row}
    assert numbers == {8, 23}  # only V and O after substitution
    assert all(":" in i for i in table.column("id").to_pylist())  # provenance: source id + assignment
    # Energy step: stop after one chunk, then resume (finished chunks are not recomputed).
    first = label_energies(cfg.data_dir, chunk=cfg.energy_chunk, max_chunks=1)
    assert first["labelled"] == cfg.energy_chunk
    assert not (tmp_path / "data" / "labelled.parquet").exists()
    part = tmp_path / "data" / "energies" / "part-000000.parquet"
    stamp = part.stat().st_mtime_ns
    done = label_energies(cfg.data_dir, chunk=cfg.energy_chunk)
    assert done["labelled"] == counts["structures"]
    assert part.stat().st_mtime_ns == stamp
    lab = pq.read_table(tmp_path / "data" / "labelled.parquet").to_pandas()
    assert lab.e_form.between(-5, 5).all()
    assert 0 < lab.stable.sum() < len(lab) or lab.stable.all()
    refs = json.loads((tmp_path / "data" / "references.json").read_text())["energies"]
    assert -9.5 < refs["V"] < -8.5  # MP GGA: -9.08 eV/atom
    assert -5.3 < refs["O"] < -4.4  # MP GGA: -4.95 eV/atom

    final = workflow.train(cfg)
    assert final["stage"] == "done"
    history = json.loads((tmp_path / "model" / "metrics.json").read_text())["history"]
    vae = [h for h in history if h["stage"] == "vae"]
    assert vae[-1]["rec"] < vae[0]["rec"]  # the generator learned something

    # A VAE-only retrain on the trained autoencoders (what a β sweep needs).
    import torch

    from crystalspace.gen.errors import GenError
    from crystalspace.gen.train import train_generator

    base = workflow.train_settings(cfg)
    again = replace(base, autoencoders_from=str(cfg.model_dir), epochs_vae=3, beta=1e-5, cell_settings=3)
    train_generator(cfg.data_dir, tmp_path / "model_vae_only", again)
    # The extra cell settings add VAE training rows, not dataset rows: one latent per dataset row.
    latents = np.load(tmp_path / "model_vae_only" / "latents.npz")
    assert len(latents["mu"]) == len(latents["ids"]) == counts["structures"]
    old, new = (
        torch.load(d / "model.pt", weights_only=True)
        for d in (tmp_path / "model", tmp_path / "model_vae_only")
    )
    assert all(torch.equal(old["cell_ae"][k], new["cell_ae"][k]) for k in old["cell_ae"])
    stages = {
        h["stage"] for h in json.loads((tmp_path / "model_vae_only" / "metrics.json").read_text())["history"]
    }
    assert stages == {"vae", "done"}
    with pytest.raises(GenError, match="width"):
        train_generator(cfg.data_dir, tmp_path / "model_bad", replace(again, width=8))
    assert not (tmp_path / "model_bad").exists()
    # A diverging run stops at the first non-finite epoch with one line, and writes no model.
    from crystalspace.training import NonFiniteLossError

    diverging = replace(base, lr=1e30, epochs_cell=1, epochs_basis=0, epochs_vae=0)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss .* cell autoencoder, epoch 0"):
        train_generator(cfg.data_dir, tmp_path / "model_nan", diverging)
    assert not (tmp_path / "model_nan").exists()

    # Slerp end points span the compositions: each stable valid composition before any repeats.
    from crystalspace.gen.generator import Generator
    from crystalspace.gen.sample import anchor_indices

    g = Generator(cfg.model_dir)
    lat = g.latents
    anchors = anchor_indices(g, 6)
    topped_up = [
        str(f) for i, f in zip(anchors, lat["formula"][anchors], strict=True) if not lat["known_vo"][i]
    ]
    valid = {
        str(f)
        for f, st in zip(lat["formula"], lat["stable"], strict=True)
        if st and 2 <= 2 * Composition(f)["O"] / max(Composition(f)["V"], 1e-9) <= 5
    }
    assert set(topped_up) <= valid
    assert len(set(topped_up)) == min(len(topped_up), len(valid))

    sample = ["gen", "sample", "--n", "40", "--method", "slerp", "--out", str(tmp_path / "samples")]
    sample += ["--set", f"model_dir={cfg.model_dir}", "--set", f"data_dir={cfg.data_dir}"]
    # Without the shared data folder: one line naming the missing MP file.
    monkeypatch.setenv("CRYSTALSPACE_DATA", str(tmp_path / "no-shared-data"))
    res = runner.invoke(app, sample)
    assert res.exit_code == 2, res.output
    assert "not found" in res.output
    # Decoded by the VAE's atom counts here; evaluate below decodes by peak threshold.
    sample += ["--set", f"source={cfg.source}", "--set", f"mp_formulas={cfg.mp_formulas}"]
    res = runner.invoke(app, [*sample, "--set", "decode_by_counts=true"])
    assert res.exit_code == 0, res.output
    gen = pd.read_parquet(tmp_path / "samples" / "slerp" / "generated.parquet")
    assert len(gen) == 40
    new = (
        pd.read_csv(tmp_path / "samples" / "slerp" / "new_materials.csv")
        if gen.new_material.any()
        else gen.iloc[:0]
    )
    for cif in new.get("cif", []):
        assert (tmp_path / "samples" / "slerp" / cif).exists()

    report = workflow.evaluate(cfg)
    intrinsic = report["table1"]["intrinsic"]
    assert max(intrinsic["rmse_cell"]) < 1e-4  # exact up to the float32 metric tensors
    assert report["table1"]["intrinsic_refined"]["mean_basis"] < 0.01
    ae_only, test = report["table1"]["test_autoencoders_only"], report["table1"]["test"]
    assert ae_only["n"] == test["n"] == report["table1"]["test_by_counts"]["n"]
    assert np.all(np.isfinite(ae_only["rmse_cell"]))
    assert report["table2"]["random"]["generated"] == 40
    rd = report["rediscovery"]
    assert 0 <= rd["rediscovered_unrelaxed"] <= rd["rediscovered"] <= rd["held_out"] == len(rd["materials"])
    assert (tmp_path / "out" / "report.md").read_text().startswith("### Table 1")
