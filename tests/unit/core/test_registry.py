"""The one saved-model format (``crystalspace.registry``): every model kind round-trips through a
registry entry, extra artefacts included; a folder in an older format is one line that says how to
get a new model; a save that fails half-way leaves no folder."""

from __future__ import annotations

import json
import pathlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from _paths import DATA

from crystalspace.errors import UserError
from crystalspace.registry import FILES, RegistryError, list_entries, load_entry, save_entry, write_entry

TABLE = DATA / "csp_subset" / "mp_binary_le12sites_first300.csv.gz"


def _files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def _one_line(exc: pytest.ExceptionInfo[Any], *words: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert isinstance(exc.value, UserError)
    for w in words:
        assert w in msg, msg


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


def test_force_field_entry_round_trip(tmp_path: Path) -> None:
    from crystalspace.mlff.models import build_model
    from crystalspace.mlff.potential import load_potential

    model = build_model("schnet", hidden=8, layers=1)
    config = {"hparams": {"hidden": 8, "layers": 1}, "max_neighbors": 12}
    path = save_entry(
        tmp_path, model.arch, "lgps", model.state_dict(), config, {"val_force_mae": 0.1}, "# card\n"
    )
    assert path.name == f"{model.arch}-lgps-v1"
    assert _files(path) == sorted(FILES)
    entry = load_entry(path)
    assert entry.config["artefacts"] == []
    assert entry.metrics == {"val_force_mae": 0.1}
    loaded = load_potential(path).model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_csp_entry_round_trip_with_the_lattice_forests(tmp_path: Path) -> None:
    from crystalspace.csp.data import read_table
    from crystalspace.csp.features import Standardiser, species_of
    from crystalspace.csp.lattice import LatticeModel
    from crystalspace.csp.model import DistanceNet, NetConfig
    from crystalspace.csp.target import Bins, pair_mask
    from crystalspace.csp.train import Arrays, TrainConfig, load_model, predict_distances, save_model

    entries = read_table(TABLE, max_atoms=12, limit=20)
    std = Standardiser.fit([z for e in entries for z in species_of(e.structure)])
    arrays = Arrays.of(entries, std)
    bins = Bins.fit(arrays.d, pair_mask(arrays.mask), 4)
    net = {"blocks_1d": 1, "filters_1d": 4, "blocks_2d": 1, "filters_2d": 4}
    cfg = TrainConfig(n_bins=4, epochs=1, net=net)
    torch.manual_seed(0)
    model = DistanceNet(NetConfig(n_out=4, **net)).eval()
    lattice = LatticeModel(n_estimators=2).fit(entries)
    metrics = {"n_train": 20, "distance": {"rmse": 1.5, "overlap": 0.9}}
    save_model(tmp_path / "csp", model, cfg, bins, std, lattice, metrics, {"table": str(TABLE)})

    assert _files(tmp_path / "csp") == sorted([*FILES, "lattice.skops"])
    config = json.loads((tmp_path / "csp" / "config.json").read_text())
    assert config["artefacts"] == ["lattice.skops"]
    assert config["dataset"] == "mp_binary_le12sites_first300"
    assert "distance network" in (tmp_path / "csp" / "card.md").read_text()
    b = load_model(tmp_path / "csp")
    assert b["cfg"] == cfg
    assert b["info"] == metrics
    np.testing.assert_array_equal(
        predict_distances(b["model"], arrays, b["bins"]), predict_distances(model, arrays, bins)
    )
    zs = species_of(entries[0].structure)
    assert b["lattice"].predict(zs) == lattice.predict(zs)


def _tiny_generator_state(settings: Any) -> dict[str, Any]:
    """A finished gen run's state with tiny untrained networks."""
    from crystalspace.gen.models import ConvAutoencoder, MaterialsVAE

    torch.manual_seed(0)
    spec = settings.image_spec()
    in_dim = settings.cell_latent + 2 * settings.basis_latent + 2
    nets = {
        "cell_ae": ConvAutoencoder(spec.cell_grid, settings.cell_latent, settings.width),
        "basis_ae": ConvAutoencoder(spec.basis_grid, settings.basis_latent, settings.width),
        "vae": MaterialsVAE(in_dim, settings.vae_latent, settings.vae_hidden),
    }
    history = [
        {"stage": "cell", "epoch": 0, "loss": 0.5, "seconds": 1.0},
        {"stage": "vae", "epoch": 0, "rec": 0.7, "kl": 0.1, "bce": 0.6, "acc": 0.5, "seconds": 2.0},
        {"stage": "done", "test_stability_accuracy": 0.75, "seconds": 3.0},
    ]
    return {
        **{k: n.state_dict() for k, n in nets.items()},
        "mean": torch.zeros(in_dim),
        "std": torch.ones(in_dim),
        "mu": torch.arange(3 * settings.vae_latent, dtype=torch.float32).reshape(3, -1),
        "history": history,
        "in_dim": in_dim,
    }


def test_generator_entry_round_trip_with_the_latents(tmp_path: Path) -> None:
    from crystalspace.gen.generator import Generator, save_generator
    from crystalspace.gen.images import ImageSpec
    from crystalspace.gen.train import TrainSettings

    spec = asdict(ImageSpec(cell_grid=8, basis_grid=8))
    settings = TrainSettings(cell_latent=4, basis_latent=4, vae_latent=2, vae_hidden=8, width=2, spec=spec)
    state = _tiny_generator_state(settings)
    table = pa.table(
        {"id": ["a", "b", "c"], "formula": ["VO2", "V2O5", "VO"], "stable": [True, False, True],
         "known_vo": [False, False, True]}
    )  # fmt: skip
    split = {"train": np.array([0]), "test": np.array([1]), "known": np.array([2])}
    save_generator(tmp_path / "gen", settings, state, table, split)

    assert _files(tmp_path / "gen") == sorted([*FILES, "latents.npz"])
    metrics = json.loads((tmp_path / "gen" / "metrics.json").read_text())
    assert metrics["test_stability_accuracy"] == 0.75
    assert metrics["history"] == state["history"]
    assert "test stability accuracy 0.750" in (tmp_path / "gen" / "card.md").read_text()
    g = Generator(tmp_path / "gen", device="cpu")
    assert g.spec == settings.image_spec()
    assert asdict(g.settings) == json.loads(json.dumps(asdict(settings)))
    np.testing.assert_array_equal(g.latents["mu"], state["mu"].numpy())
    assert list(g.latents["formula"]) == ["VO2", "V2O5", "VO"]
    np.testing.assert_array_equal(g.latents["split_known"], [2])
    assert all(torch.equal(g.vae.state_dict()[k], v) for k, v in state["vae"].items())


def test_old_csp_folder_is_one_line_naming_the_retrain_command(tmp_path: Path) -> None:
    from crystalspace.csp.train import load_model

    old = tmp_path / "csp-model"  # what csp train wrote before: no metrics.json, no card.md
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"format": 2, "net": {}, "bins": None}))
    torch.save({}, old / "model.pt")
    (old / "lattice.skops").write_bytes(b"")
    (old / "info.json").write_text("{}")
    with pytest.raises(RegistryError) as exc:
        load_model(old)
    _one_line(exc, "older crystalspace", "crystalspace csp train", str(old))


def test_old_generator_folder_is_one_line_naming_the_retrain_command(tmp_path: Path) -> None:
    from crystalspace.gen.generator import Generator

    old = tmp_path / "gen-model"  # what gen train wrote before: weights.pt, metrics as a list
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"settings": {}, "in_dim": 8}))
    torch.save({"vae": {}}, old / "weights.pt")
    np.savez(old / "latents.npz", mu=np.zeros((1, 2)))
    (old / "metrics.json").write_text("[]")
    with pytest.raises(RegistryError) as exc:
        Generator(old, device="cpu")
    _one_line(exc, "older crystalspace", "model.pt", "crystalspace gen train")


def test_a_save_that_fails_half_way_leaves_no_folder(tmp_path: Path, monkeypatch) -> None:
    state = {"w": torch.arange(3.0)}
    write_entry(tmp_path / "kept", {"arch": "x"}, state, {"v": 1}, "# old\n")
    real, calls = pathlib.Path.write_bytes, []

    def failing(self: Path, data: bytes) -> int:
        calls.append(self.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", failing)
    with pytest.raises(OSError, match="No space left"):
        write_entry(tmp_path / "new", {"arch": "x"}, state, {}, "", {"extra.bin": b"1"})
    calls.clear()
    with pytest.raises(OSError, match="No space left"):
        write_entry(tmp_path / "kept", {"arch": "x"}, {"w": torch.zeros(3)}, {"v": 2}, "", overwrite=True)
    monkeypatch.undo()
    assert _files(tmp_path) == ["kept"]  # no new folder, no temporary leftovers
    assert load_entry(tmp_path / "kept").metrics == {"v": 1}  # the old entry is intact
    assert torch.equal(load_entry(tmp_path / "kept").state_dict()["w"], state["w"])
    with pytest.raises(RegistryError, match="exists"):
        write_entry(tmp_path / "kept", {}, state, {}, "")
    with pytest.raises(RegistryError, match="plain file names"):
        write_entry(tmp_path / "bad", {}, state, {}, "", {"../escape": b""})
    with pytest.raises(RegistryError, match="not JSON"):
        write_entry(tmp_path / "bad", {}, state, {"bad": object()}, "")
    assert _files(tmp_path) == ["kept"]
