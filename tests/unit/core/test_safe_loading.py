"""Nothing executable from data: crafted pickle files are refused, never unpacked (through the command
line: tests/integration/test_cli_unsafe_files.py); the CSP model folder round-trips through JSON,
tensors and skops with identical predictions."""

from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from _paths import DATA

TABLE = DATA / "csp_subset" / "mp_binary_le12sites_first300.csv.gz"


class _Payload:
    """Unpacking this object (with ``pickle.load`` or ``torch.load(weights_only=False)``) creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_payload_is_live(tmp_path: Path) -> None:
    """The crafted object really runs code when unpickled (so the refusals below mean something)."""
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control)))
    assert control.exists()


def test_gen_weights_with_a_python_object_are_refused(tmp_path: Path) -> None:
    from crystalspace.gen.generator import Generator
    from crystalspace.gen.train import TrainSettings
    from crystalspace.registry import UnsafeFileError, write_entry

    marker = tmp_path / "pwned"
    folder = tmp_path / "gen-model"
    write_entry(folder, {"settings": asdict(TrainSettings()), "in_dim": 8}, {}, {}, "", {"latents.npz": b""})
    torch.save({"cell_ae": _Payload(marker), "mean": torch.zeros(8)}, folder / "model.pt")
    with pytest.raises(UnsafeFileError) as exc:
        Generator(folder, device="cpu")
    msg = str(exc.value)
    assert "\n" not in msg
    assert "weights_only=True" in msg
    assert "gen train" in msg
    assert not marker.exists()


def test_checkpoint_with_a_python_object_is_refused(tmp_path: Path) -> None:
    from crystalspace.md.trajectory import load_checkpoint
    from crystalspace.registry import UnsafeFileError

    marker = tmp_path / "pwned"
    torch.save({"step": 3, "rng": _Payload(marker)}, tmp_path / "ckpt.pt")
    with pytest.raises(UnsafeFileError, match="weights_only=True"):
        load_checkpoint(tmp_path / "ckpt.pt")
    assert not marker.exists()


def test_csp_bundle_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    from crystalspace.csp.data import read_table, split_by_formula
    from crystalspace.csp.features import Standardiser, species_of
    from crystalspace.csp.lattice import LatticeModel
    from crystalspace.csp.target import Bins, pair_mask
    from crystalspace.csp.train import Arrays, TrainConfig, fit, load_model, predict_distances, save_model
    from crystalspace.csp.workflow import predicted_geometry

    torch.set_num_threads(1)
    entries = read_table(TABLE, max_atoms=12, limit=60)
    train, test = split_by_formula(entries, 0.2)
    std = Standardiser.fit([z for e in train for z in species_of(e.structure)])
    a_tr, a_te = Arrays.of(train, std), Arrays.of(test, std)
    cfg = TrainConfig(
        n_bins=5,
        epochs=1,
        batch_size=16,
        net={"blocks_1d": 1, "filters_1d": 4, "blocks_2d": 1, "filters_2d": 4},
    )
    bins = Bins.fit(a_tr.d, pair_mask(a_tr.mask), cfg.n_bins)
    model = fit(a_tr, cfg, bins)
    lattice = LatticeModel(n_estimators=5).fit(train)
    info = {"n_train": len(train)}
    save_model(tmp_path / "model", model, cfg, bins, std, lattice, info)

    names = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert names == ["card.md", "config.json", "lattice.skops", "metrics.json", "model.pt"]
    b = load_model(tmp_path / "model")
    assert b["cfg"] == cfg
    assert b["net"] == model.cfg
    assert b["info"] == info
    assert b["bins"] is not None
    np.testing.assert_array_equal(b["bins"].edges, bins.edges)
    np.testing.assert_array_equal(b["std"].mean, std.mean)
    np.testing.assert_array_equal(b["std"].std, std.std)
    np.testing.assert_array_equal(
        predict_distances(b["model"], a_te, b["bins"]), predict_distances(model, a_te, bins)
    )
    before = {"cfg": cfg, "std": std, "bins": bins, "model": model, "lattice": lattice}
    for e in test[:5]:
        zs = species_of(e.structure)
        (d0, g0), (d1, g1) = predicted_geometry(before, zs), predicted_geometry(b, zs)
        np.testing.assert_array_equal(d0, d1)
        assert g0 == g1


def test_lattice_file_with_an_untrusted_type_is_refused(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    from crystalspace.csp.lattice import TRUSTED_TYPES, LatticeFileError, LatticeModel

    x, y = np.arange(20.0).reshape(10, 2), np.arange(10) % 2
    reg = RandomForestRegressor(n_estimators=2).fit(x, y)
    clf = RandomForestClassifier(n_estimators=2).fit(x, y)
    assert sio.get_untrusted_types(data=sio.dumps({"reg": reg, "clf": clf})) == TRUSTED_TYPES
    sio.dump({"reg": reg, "clf": _Payload(tmp_path / "pwned")}, tmp_path / "lattice.skops")
    with pytest.raises(LatticeFileError, match="safely"):
        LatticeModel.load(tmp_path / "lattice.skops")
    assert not (tmp_path / "pwned").exists()
