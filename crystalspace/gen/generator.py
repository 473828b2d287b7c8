"""The trained iMatGen model set: its saved folder (a registry entry, :mod:`crystalspace.registry`)
and :class:`Generator`, which encodes structures to latent points and decodes latent points to images."""

from __future__ import annotations

import io
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalspace.gen.errors import GenError
from crystalspace.gen.images import images, structure_tensors
from crystalspace.gen.models import COUNT_SCALE, ConvAutoencoder, MaterialsVAE, material_vectors
from crystalspace.gen.train import TrainSettings
from crystalspace.registry import Entry, load_entry, write_entry

if TYPE_CHECKING:
    import pyarrow as pa
    from pymatgen.core import Structure

LATENTS = "latents.npz"
WEIGHTS = ("cell_ae", "basis_ae", "vae", "mean", "std")
RETRAIN = "retrain it with `crystalspace gen train --config pipelines/configs/gen_small.yaml`"


def save_generator(
    out: Path, settings: TrainSettings, state: dict[str, Any], table: pa.Table, split: dict[str, np.ndarray]
) -> Path:
    """Write the model folder ``out`` (replacing one there) from a finished run's state: the three
    networks and the input normalisation (``model.pt``), ``config.json`` (the settings), the
    history (``metrics.json``), ``card.md`` and the artefact ``latents.npz`` (the latent means of
    the dataset rows with their ids, formulas, labels and split)."""
    arrays: dict[str, Any] = {
        "mu": state["mu"].numpy(),
        "ids": np.array(table["id"].to_pylist()),
        "formula": np.array(table["formula"].to_pylist()),
        "stable": np.asarray(table["stable"].to_pylist(), bool),
        "known_vo": np.asarray(table["known_vo"].to_pylist(), bool),
        **{f"split_{k}": v for k, v in split.items()},
    }
    latents = io.BytesIO()
    np.savez(latents, **arrays)
    history = state["history"]
    metrics = {**{k: v for k, v in history[-1].items() if k != "stage"}, "history": history}
    config = {"arch": "imatgen", "dataset": "vo", "settings": asdict(settings), "in_dim": state["in_dim"]}
    weights = {k: state[k] for k in WEIGHTS}
    card = _card(settings, metrics, {k: len(v) for k, v in split.items()})
    return write_entry(out, config, weights, metrics, card, {LATENTS: latents.getvalue()}, overwrite=True)


def open_model(folder: str | os.PathLike[str], device: Any = "cpu") -> tuple[Entry, dict[str, Any]]:
    """The model folder's entry and weights (on ``device``); one-line errors for a missing folder,
    an older format or weights that are not a gen model's."""
    f = Path(folder)
    if not (f / "config.json").exists():
        raise GenError(
            f"no trained model in {f}: run `crystalspace gen train --config pipelines/configs/gen_small.yaml` first (trains in minutes on CPU)"
        )
    entry = load_entry(f, remedy=RETRAIN)
    w = entry.state_dict(device)
    if not isinstance(w, dict) or not set(WEIGHTS) <= w.keys() or "settings" not in entry.config:
        raise GenError(f"{f}: not a gen model; {RETRAIN}")
    return entry, w


def _card(s: TrainSettings, m: dict[str, Any], sizes: dict[str, int]) -> str:
    last = {h["stage"]: h for h in m["history"]}
    losses = ", ".join(
        f"{stage} {last[stage][key]:.4g}"
        for stage, key in (("cell", "loss"), ("basis", "loss"), ("vae", "rec"))
        if stage in last
    )
    spec = s.image_spec()
    reused = f"; autoencoders reused from `{s.autoencoders_from}`" if s.autoencoders_from else ""
    return (
        "# iMatGen generator (V–O)\n\n"
        "- what: 3-D convolutional autoencoders for the cell and basis images and a materials VAE with "
        f"a stability classifier on its latent space; the dataset rows' latent means in `{LATENTS}`\n"
        f"- data: labelled V–O dataset, {sizes['train']} training / {sizes['test']} test rows, "
        f"{sizes['known']} known V–O materials (held out: {s.hold_out_known}); images {spec.cell_grid}³ "
        f"cell, {spec.basis_grid}³ basis in a {spec.box} Å box; {s.cell_settings} cell settings per VAE row\n"
        f"- metrics: test stability accuracy {m.get('test_stability_accuracy', float('nan')):.3f}; "
        f"last losses: {losses}\n"
        f"- trained: Adam lr {s.lr} (cosine to ×{s.lr_final}), epochs cell {s.epochs_cell} / basis "
        f"{s.epochs_basis} / VAE {s.epochs_vae}, batch {s.batch_size}, β {s.beta}, γ {s.gamma}, seed {s.seed}, "
        f"on Ray Train (`crystalspace.training`){reused}\n"
        "- use: `crystalspace gen sample|evaluate --set model_dir=PATH`; "
        "`crystalspace.gen.generator.Generator(PATH)` in Python\n"
    )


# ------------------------------------------------------------- the generator
class Generator:
    """A trained model folder: encode structures to latents, decode latents to structures."""

    def __init__(self, folder: str | os.PathLike[str], device: str = "auto") -> None:
        """Load a model folder onto ``device`` (``"auto"``: CUDA when there is one, else CPU)."""
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        entry, w = open_model(folder, device)
        self.settings = s = TrainSettings(**entry.config["settings"])
        self.spec = s.image_spec()
        self.cell_ae = ConvAutoencoder(self.spec.cell_grid, s.cell_latent, s.width)
        self.basis_ae = ConvAutoencoder(self.spec.basis_grid, s.basis_latent, s.width)
        self.vae = MaterialsVAE(entry.config["in_dim"], s.vae_latent, s.vae_hidden)
        for name in ("cell_ae", "basis_ae", "vae"):
            getattr(self, name).load_state_dict(w[name])
            getattr(self, name).to(device).eval()
        self.mean, self.std = w["mean"].to(device), w["std"].to(device)
        self.device = device
        lat = np.load(entry.artefact(LATENTS))
        self.latents = {k: lat[k] for k in lat.files}

    def encode(self, structures: list[Structure]) -> np.ndarray:
        """Latent means (K, latent) of structures."""
        import torch

        with torch.no_grad():
            arr, cell, basis = self._images(structures)
            x = material_vectors(self.cell_ae, self.basis_ae, cell, basis, arr["counts"].to(self.device))
            return self.vae.encode((x - self.mean) / self.std)[0].cpu().numpy()

    def _images(self, structures: list[Structure]) -> tuple[dict[str, Any], Any, Any]:
        """The structures' tensors and their cell and basis images, drawn on the model's device."""
        import torch

        arr = {k: torch.as_tensor(v) for k, v in structure_tensors(structures, self.spec).items()}
        cell, basis = images(arr, torch.arange(len(structures)), self.spec, self.device)
        return arr, cell, basis

    def stability(self, z: np.ndarray) -> np.ndarray:
        """Classifier probability that a latent point is stable (E_f ≤ 0.5 eV/atom)."""
        import torch

        with torch.no_grad():
            return (
                torch.sigmoid(
                    self.vae.classifier(torch.as_tensor(z, dtype=torch.float32, device=self.device))
                )
                .squeeze(-1)
                .cpu()
                .numpy()
            )

    def decode_images(self, z: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cell (K, m,m,m) and basis (K, C, n,n,n) images of latent points, and the atom counts
        per element (K, C) decoded from the material vector's count entries."""
        import torch

        cells, bases, counts = [], [], []
        c = len(self.spec.elements)
        with torch.no_grad():
            for i in range(0, len(z), batch):
                zz = torch.as_tensor(z[i : i + batch], dtype=torch.float32, device=self.device)
                x = self.vae.decode(zz) * self.std + self.mean
                lc, lb = self.settings.cell_latent, self.settings.basis_latent
                cells.append(self.cell_ae.decode(x[:, :lc])[:, 0].cpu().numpy())
                vb = x[:, lc : lc + c * lb].reshape(-1, lb)
                b = self.basis_ae.decode(vb)
                bases.append(b.reshape(len(zz), c, *b.shape[2:]).cpu().numpy())
                counts.append((x[:, lc + c * lb :] * COUNT_SCALE).cpu().numpy())
        return np.concatenate(cells), np.concatenate(bases), np.concatenate(counts)

    def reconstruct_images(self, structures: list[Structure]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images and atom counts after encoding and decoding through the whole model (latent means)."""
        return self.decode_images(self.encode(structures))

    def autoencode_images(self, structures: list[Structure]) -> tuple[np.ndarray, np.ndarray]:
        """Images after the two image autoencoders only (no VAE): the compression step's own error."""
        import torch

        with torch.no_grad():
            _, cell, basis = self._images(structures)
            b, c = basis.shape[:2]
            out_b = self.basis_ae(basis.reshape(b * c, 1, *basis.shape[2:])).reshape(basis.shape)
            return self.cell_ae(cell)[:, 0].cpu().numpy(), out_b.cpu().numpy()
