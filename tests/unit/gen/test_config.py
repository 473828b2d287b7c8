"""The generation config reads YAML exponent floats as numbers (a beta sweep written as 1e-5)."""

from __future__ import annotations

from crystalspace.gen.config import make_gen_config


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
