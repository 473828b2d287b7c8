"""Training the iMatGen model set with Ray Train, and the saved generator that encodes and decodes.

Two steps in one Ray Train run (one ``TorchTrainer`` job, 1 CPU worker in tests, N GPUs on a
cluster): (1) the cell and basis autoencoders learn to compress images that are drawn on the fly
from the structures (no image is ever stored); (2) the materials generator (VAE) learns the
distribution of ``[cell vector | basis vector per element | element counts]`` with the stability
classifier on its latent space. The saved model is a folder (``config.json``, ``weights.pt``,
``latents.npz`` with the latent means of every dataset row, ``metrics.json``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalspace.gen.errors import GenError
from crystalspace.gen.images import ImageSpec, render_basis, render_cells, standard_matrix

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import pyarrow as pa
    import torch
    from pymatgen.core import Structure

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Model sizes and optimisation (defaults sized for a GPU; configs shrink them for CPU)."""

    cell_latent: int = 32
    basis_latent: int = 128
    vae_latent: int = 128
    vae_hidden: int = 1024
    width: int = 16
    epochs_cell: int = 60
    epochs_basis: int = 20
    epochs_vae: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    # Each stage's learning rate decays (cosine) to lr · lr_final over its epochs; 1.0 keeps it flat.
    lr_final: float = 0.01
    # Weight of the cell code in the VAE's reconstruction loss. The cell decoder is the most
    # sensitive to code errors (a few % of a code's spread moves lengths by tenths of an Å);
    # 10 halves the test cell error at study size, 30 with cell_settings 3 brings it below the
    # study's (benchmarks/RESULTS.md, VAE sweeps).
    cell_weight: float = 30.0
    # Weight of the element counts (the last numbers of the material vector) in the same loss.
    count_weight: float = 10.0
    beta: float = 1e-3  # KL weight
    gamma: float = 1.0  # stability-classifier weight
    test_fraction: float = 0.1
    hold_out_known: bool = True  # train without the known V–O materials (rediscovery test)
    seed: int = 0
    # Unit cells per training row that the VAE learns from: 1 = the stored cell; 2 or 3 add the
    # cyclic relabellings (b, c, a) and (c, a, b) of the axes, the same crystal in another cell
    # (the augmentation the study suggests). The autoencoders train on the stored cells only.
    cell_settings: int = 3
    # A model folder whose image autoencoders are reused: only the VAE trains.
    autoencoders_from: str | None = None
    num_workers: int = 1
    use_gpu: bool = False
    spec: dict[str, Any] = field(default_factory=lambda: asdict(ImageSpec()))


# --------------------------------------------------------------- data arrays
def row_structure(row: dict[str, Any]) -> Structure:
    """pymatgen structure of a dataset row."""
    from crystalspace.atoms.io import atoms_to_structure, row_to_atoms

    return atoms_to_structure(row_to_atoms(row))


def structure_tensors(
    structures: list[Structure], spec: ImageSpec, max_atoms: int | None = None
) -> dict[str, np.ndarray]:
    """Metric tensors, box positions (padded), channels (-1 = pad) and element counts."""
    from crystalspace.gen.images import structure_arrays

    p = max_atoms or max(len(s) for s in structures)
    n = len(structures)
    metric = np.zeros((n, 3, 3), np.float32)
    pos = np.zeros((n, p, 3), np.float32)
    ch = -np.ones((n, p), np.int64)
    counts = np.zeros((n, len(spec.elements)), np.float32)
    for i, s in enumerate(structures):
        m = standard_matrix(s.lattice)
        metric[i] = m @ m.T
        x, c = structure_arrays(s, spec)
        pos[i, : len(x)], ch[i, : len(x)] = x, c
        counts[i] = np.bincount(c, minlength=len(spec.elements))
    return {"metric": metric, "pos": pos, "ch": ch, "counts": counts}


def split_indices(
    table: pa.Table, test_fraction: float, hold_out_known: bool, seed: int
) -> dict[str, np.ndarray]:
    """90/10 train/test split of the rows; known V–O materials form their own held-out set."""
    known = np.asarray(table["known_vo"].to_pylist(), dtype=bool)
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(~known) if hold_out_known else np.arange(len(known))
    pool = rng.permutation(pool)
    n_test = max(1, round(test_fraction * len(pool)))
    return {"train": np.sort(pool[n_test:]), "test": np.sort(pool[:n_test]), "known": np.flatnonzero(known)}


def cyclic_cells(
    structures: list[Structure], rows: np.ndarray, settings: int, spec: ImageSpec
) -> tuple[list[Structure], np.ndarray]:
    """The structures of ``rows`` in their other cyclic cell settings (up to ``settings`` − 1 each),
    skipping those whose atoms leave the basis box; returns them and the row each came from."""
    from pymatgen.core import Lattice, Structure

    from crystalspace.gen.images import ImageError, structure_arrays

    out: list[Structure] = []
    origin: list[int] = []
    for shift in range(1, min(settings, 3)):
        perm = np.roll([0, 1, 2], -shift)
        for i in rows:
            s = structures[i]
            t = Structure(Lattice(s.lattice.matrix[perm]), s.species, s.frac_coords[:, perm])
            try:
                structure_arrays(t, spec)
            except ImageError:
                continue
            out.append(t)
            origin.append(int(i))
    return out, np.asarray(origin, dtype=np.int64)


# ------------------------------------------------------------------ images
COUNT_SCALE = 20.0  # atoms per element enter the material vector as counts / COUNT_SCALE


def cell_images(
    arrays: dict[str, torch.Tensor], idx: torch.Tensor, spec: ImageSpec, device: Any
) -> torch.Tensor:
    """Cell images (B,1,m,m,m) of rows ``idx``, drawn on ``device``."""
    return render_cells(arrays["metric"][idx].to(device), spec.cell_grid, spec.cell_sigma)


def basis_images(
    arrays: dict[str, torch.Tensor], idx: torch.Tensor, spec: ImageSpec, device: Any
) -> torch.Tensor:
    """Basis images (B,C,n,n,n) of rows ``idx``, drawn on ``device``."""
    return render_basis(
        arrays["pos"][idx].to(device),
        arrays["ch"][idx].to(device),
        spec.basis_grid,
        spec.box,
        spec.basis_sigma,
        len(spec.elements),
    )


def images(
    arrays: dict[str, torch.Tensor], idx: torch.Tensor, spec: ImageSpec, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell (B,1,m,m,m) and basis (B,C,n,n,n) images of rows ``idx``, drawn on ``device``."""
    return cell_images(arrays, idx, spec, device), basis_images(arrays, idx, spec, device)


def material_vectors(
    cell_ae: Any, basis_ae: Any, cell: torch.Tensor, basis: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """``[cell vector | basis vector per element | counts / COUNT_SCALE]`` (the generator's input)."""
    import torch

    b, c = basis.shape[:2]
    vb = basis_ae.encode(basis.reshape(b * c, 1, *basis.shape[2:])).reshape(b, -1)
    return torch.cat([cell_ae.encode(cell), vb, counts / COUNT_SCALE], dim=1)


def vae_weights(s: TrainSettings, in_dim: int, n_elements: int) -> torch.Tensor:
    """Per-number weights of the VAE's reconstruction loss: ``cell_weight`` on the cell code,
    ``count_weight`` on the element counts, 1 on the basis codes."""
    import torch

    w = torch.ones(in_dim)
    w[: s.cell_latent] = s.cell_weight
    w[in_dim - n_elements :] = s.count_weight
    return w


# ------------------------------------------------------------- the train loop
def _batches(
    idx: torch.Tensor, batch: int, world: int, rank: int, gen: torch.Generator
) -> list[torch.Tensor]:
    import torch

    perm = idx[torch.randperm(len(idx), generator=gen)]
    per_rank = max(1, len(perm) // world)
    mine = perm[rank * per_rank : (rank + 1) * per_rank]
    nb = max(1, per_rank // batch)
    return [mine[i * batch : (i + 1) * batch] for i in range(nb) if len(mine[i * batch : (i + 1) * batch])]


def _cosine(opt: Any, epochs: int, final: float) -> Any:
    """Per-epoch cosine decay of ``opt``'s learning rate to ``final`` times its start."""
    import torch

    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs), eta_min=final * opt.defaults["lr"])


def fit_autoencoder(
    net: Any,
    batches: Callable[[], Iterable[Any]],
    images_of: Callable[[Any], Any],
    epochs: int,
    lr: float,
    lr_final: float,
    peak_weight: float,
    on_epoch: Callable[[int, float], None] | None = None,
    name: str = "autoencoder",
) -> None:
    """Train an image autoencoder: Adam, cosine-decayed rate, ``image_loss``. ``batches()`` gives
    one epoch's index batches and ``images_of(idx)`` their images; ``on_epoch(epoch, mean loss)``
    runs after each epoch. A non-finite epoch loss raises :class:`NonFiniteLossError`."""
    import torch

    from crystalspace.gen.models import image_loss
    from crystalspace.training import check_finite

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = _cosine(opt, epochs, lr_final)
    for epoch in range(epochs):
        net.train()
        losses = []
        for idx in batches():
            x = images_of(idx)
            loss = image_loss(net(x), x, peak_weight=peak_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        sched.step()
        mean = float(torch.stack(losses).mean())
        check_finite(mean, f"{name}, epoch {epoch}")
        if on_epoch is not None:
            on_epoch(epoch, mean)


def train_loop(cfg: dict[str, Any]) -> None:
    """Per-worker loop: cell AE, basis AE, then the VAE; rank 0 checkpoints the model set."""
    import torch
    from ray.train.torch import prepare_model

    from crystalspace.gen.models import ConvAutoencoder, MaterialsVAE, vae_loss
    from crystalspace.gen.train import report, worker_info
    from crystalspace.training import check_finite

    rank, world, device = worker_info()
    s = TrainSettings(**cfg["settings"])
    spec = ImageSpec(**{**s.spec, "elements": tuple(s.spec["elements"])})
    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    arrays = {k: torch.as_tensor(v) for k, v in cfg["arrays"].items()}
    train_idx = torch.as_tensor(cfg["split"]["train"])  # stored cells: the autoencoders' rows
    vae_idx = torch.as_tensor(cfg["vae_train"])  # plus the other cell settings, if any
    wrap = (lambda m: prepare_model(m)) if world > 1 else (lambda m: m.to(device))
    cell_ae = ConvAutoencoder(spec.cell_grid, s.cell_latent, s.width).to(device)
    basis_ae = ConvAutoencoder(spec.basis_grid, s.basis_latent, s.width).to(device)
    history: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    reused = cfg.get("autoencoders")
    if reused:
        cell_ae.load_state_dict(reused["cell_ae"])
        basis_ae.load_state_dict(reused["basis_ae"])
    stages = () if reused else (("cell", cell_ae, s.epochs_cell), ("basis", basis_ae, s.epochs_basis))

    for stage, model, epochs in stages:

        def stage_images(idx: torch.Tensor, stage: str = stage) -> torch.Tensor:
            if stage == "cell":  # only the images this stage trains on
                return cell_images(arrays, idx, spec, device)
            basis = basis_images(arrays, idx, spec, device)
            return basis.reshape(-1, 1, *basis.shape[2:])

        def on_epoch(epoch: int, loss: float, stage: str = stage) -> None:
            m = {"stage": stage, "epoch": epoch, "loss": loss, "seconds": time.perf_counter() - t0}
            history.append(m)
            report(m)

        fit_autoencoder(
            wrap(model),
            lambda: _batches(train_idx, s.batch_size, world, rank, gen),
            stage_images,
            epochs,
            s.lr,
            s.lr_final,
            peak_weight=0.0 if stage == "cell" else 10.0,
            on_epoch=on_epoch,
            name=f"{stage} autoencoder",
        )

    # Step 2: the materials generator on the (frozen) image vectors.
    cell_ae.eval()
    basis_ae.eval()
    n_rows = len(arrays["metric"])
    vecs = []
    with torch.no_grad():
        for i in range(0, n_rows, s.batch_size):
            idx = torch.arange(i, min(i + s.batch_size, n_rows))
            cell, basis = images(arrays, idx, spec, device)
            vecs.append(material_vectors(cell_ae, basis_ae, cell, basis, arrays["counts"][idx].to(device)))
    x_all = torch.cat(vecs)
    mean = x_all[train_idx.to(device)].mean(0)
    std = x_all[train_idx.to(device)].std(0).clamp(min=1e-4)
    xn = (x_all - mean) / std
    stable = torch.as_tensor(cfg["stable"], device=device)
    vae_mod = MaterialsVAE(xn.shape[1], s.vae_latent, s.vae_hidden).to(device)
    vae = wrap(vae_mod)
    opt = torch.optim.Adam(vae.parameters(), lr=s.lr)
    sched = _cosine(opt, s.epochs_vae, s.lr_final)
    weight = vae_weights(s, xn.shape[1], len(spec.elements)).to(device)
    for epoch in range(s.epochs_vae):
        vae.train()
        parts: list[dict[str, torch.Tensor]] = []  # stays on the device: no host sync per step
        epoch_idx = torch.cat(_batches(vae_idx, s.batch_size, world, rank, gen)).to(device)  # one copy
        for idx_d in epoch_idx.split(s.batch_size):
            loss, part = vae_loss(xn[idx_d], vae(xn[idx_d]), stable[idx_d], s.beta, s.gamma, weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            parts.append(part)
        sched.step()
        means = {k: float(torch.stack([p[k] for p in parts]).mean()) for k in parts[0]}  # one sync
        check_finite(means["rec"] + means["kl"] + means["bce"], f"VAE, epoch {epoch}")
        if epoch % 10 == 0 or epoch == s.epochs_vae - 1:
            m = {"stage": "vae", "epoch": epoch, **means, "seconds": time.perf_counter() - t0}
            history.append(m)
            report(m)
    vae_mod.eval()
    with torch.no_grad():
        mu = vae_mod.encode(xn[: cfg["n_rows"]])[0].cpu().numpy()  # the dataset rows only
        test = torch.as_tensor(cfg["split"]["test"], device=device)
        acc = float(
            (
                (vae_mod.classifier(torch.as_tensor(mu, device=device)[test]).squeeze(-1) > 0)
                == stable[test].bool()
            )
            .float()
            .mean()
        )
    final = {"stage": "done", "test_stability_accuracy": acc, "seconds": time.perf_counter() - t0}
    history.append(final)
    state = {
        "cell_ae": {k: v.cpu() for k, v in cell_ae.state_dict().items()},
        "basis_ae": {k: v.cpu() for k, v in basis_ae.state_dict().items()},
        "vae": {k: v.cpu() for k, v in vae_mod.state_dict().items()},
        "mean": mean.cpu(),
        "std": std.cpu(),
        "mu": torch.from_numpy(mu),  # tensors, not numpy: the state loads with weights_only=True
        "history": history,
        "in_dim": int(xn.shape[1]),
    }
    report(final, state)


def train_generator(
    data_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: TrainSettings,
    limit: int | None = None,
) -> dict[str, Any]:
    """Train the model set on the labelled VO dataset and save the model folder ``out``."""
    from crystalspace.atoms.io import table_to_rows
    from crystalspace.gen.dataset import load_labelled
    from crystalspace.gen.train import checkpoint_state, fit

    table = load_labelled(data_dir)
    if limit is not None:
        table = table.slice(0, limit)
    spec = ImageSpec(**{**settings.spec, "elements": tuple(settings.spec["elements"])})
    structures = [row_structure(r) for r in table_to_rows(table)]
    split = split_indices(table, settings.test_fraction, settings.hold_out_known, settings.seed)
    if len(split["train"]) < 2:
        raise GenError(f"only {len(split['train'])} training rows; need at least 2")
    extra, origin = cyclic_cells(structures, split["train"], settings.cell_settings, spec)
    arrays = structure_tensors(structures + extra, spec, max_atoms=20)
    stable = np.asarray(table["stable"].to_pylist(), dtype=bool)
    cfg = {
        "settings": asdict(settings),
        "arrays": arrays,
        "split": split,
        "vae_train": np.concatenate([split["train"], len(structures) + np.arange(len(extra))]),
        "n_rows": len(structures),
        "stable": np.concatenate([stable, stable[origin]]),
    }
    if settings.autoencoders_from:
        cfg["autoencoders"] = reused_autoencoders(settings)
    out = Path(out)
    result = fit(
        train_loop,
        cfg,
        name=f"gen-{int(time.time())}",
        storage_path=out.parent / "ray_results",
        num_workers=settings.num_workers,
        use_gpu=settings.use_gpu,
    )
    state = checkpoint_state(result)
    _save_model(out, settings, state, table, split)
    return state["history"][-1]


def reused_autoencoders(settings: TrainSettings) -> dict[str, Any]:
    """The image autoencoders of the model folder ``settings.autoencoders_from``, checked to have
    the sizes and image settings of ``settings`` (a VAE-only retrain, e.g. a β sweep)."""
    f = Path(str(settings.autoencoders_from))
    if not (f / "weights.pt").exists():
        raise GenError(f"autoencoders_from: no trained model in {f}")
    old = json.loads((f / "config.json").read_text())["settings"]
    new = json.loads(json.dumps(asdict(settings)))
    for key in ("cell_latent", "basis_latent", "width", "spec"):
        if old.get(key) != new[key]:
            raise GenError(
                f"autoencoders_from {f}: its {key} {old.get(key)} differs from this config's {new[key]}"
            )
    w = load_weights(f, "cpu")
    return {"cell_ae": w["cell_ae"], "basis_ae": w["basis_ae"]}


def load_weights(folder: Path, device: Any = "cpu") -> dict[str, Any]:
    """The folder's ``weights.pt``, read with ``weights_only=True``; an older or crafted file that
    holds Python objects is refused with one :class:`~crystalspace.registry.UnsafeFileError` line."""
    from crystalspace.registry import load_tensors

    retrain = "retrain it with `crystalspace gen train`"
    w = load_tensors(
        folder / "weights.pt", device, remedy=f"saved by an older crystalspace or not a gen model; {retrain}"
    )
    if not isinstance(w, dict) or not {"cell_ae", "basis_ae", "vae", "mean", "std"} <= w.keys():
        raise GenError(f"{folder / 'weights.pt'}: not the weights of a gen model; {retrain}")
    return w


def _save_model(
    out: Path, settings: TrainSettings, state: dict[str, Any], table: pa.Table, split: dict[str, np.ndarray]
) -> None:
    import torch

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(
        json.dumps({"settings": asdict(settings), "in_dim": state["in_dim"]}, indent=1)
    )
    torch.save({k: state[k] for k in ("cell_ae", "basis_ae", "vae", "mean", "std")}, tmp / "weights.pt")
    arrays: dict[str, Any] = {f"split_{k}": v for k, v in split.items()}
    np.savez(
        tmp / "latents.npz",
        mu=state["mu"].numpy(),
        ids=np.array(table["id"].to_pylist()),
        formula=np.array(table["formula"].to_pylist()),
        stable=np.asarray(table["stable"].to_pylist(), bool),
        known_vo=np.asarray(table["known_vo"].to_pylist(), bool),
        **arrays,
    )
    (tmp / "metrics.json").write_text(json.dumps(state["history"], indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)


# ------------------------------------------------------------- the generator
class Generator:
    """A trained model folder: encode structures to latents, decode latents to structures."""

    def __init__(self, folder: str | os.PathLike[str], device: str = "auto") -> None:
        """Load a model folder onto ``device`` (``"auto"``: CUDA when there is one, else CPU)."""
        import torch

        from crystalspace.gen.models import ConvAutoencoder, MaterialsVAE

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        f = Path(folder)
        if not (f / "weights.pt").exists():
            raise GenError(
                f"no trained model in {f}: run `crystalspace gen train` first (configs: pipelines/configs/gen_small.yaml)"
            )
        cfg = json.loads((f / "config.json").read_text())
        self.settings = TrainSettings(**cfg["settings"])
        self.spec = ImageSpec(**{**self.settings.spec, "elements": tuple(self.settings.spec["elements"])})
        w = load_weights(f, device)
        s = self.settings
        self.cell_ae = ConvAutoencoder(self.spec.cell_grid, s.cell_latent, s.width)
        self.basis_ae = ConvAutoencoder(self.spec.basis_grid, s.basis_latent, s.width)
        self.vae = MaterialsVAE(cfg["in_dim"], s.vae_latent, s.vae_hidden)
        for name in ("cell_ae", "basis_ae", "vae"):
            getattr(self, name).load_state_dict(w[name])
            getattr(self, name).to(device).eval()
        self.mean, self.std = w["mean"].to(device), w["std"].to(device)
        self.device = device
        lat = np.load(f / "latents.npz")
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
