"""The iMatGen pipeline end to end at tiny size on Ray: data, energies (resumed), Ray Train,
sampling through the CLI, evaluation tables (the pieces: tests/unit/gen/)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from _paths import DATA
from pymatgen.core import Composition
from typer.testing import CliRunner

from crystalspace.cli import app
from crystalspace.gen.config import make_gen_config

SUBSET = DATA / "gen_subset"
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


@pytest.mark.slow
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
