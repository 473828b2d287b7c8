"""Training the iMatGen model set: :class:`GenTask` for the one runner (:mod:`crystalspace.training`:
Ray Train, one checkpoint per epoch, resume, NaN guard), and :func:`train_generator`, which prepares
the data, runs it and saves the model folder (:func:`crystalspace.gen.generator.save_generator`).

The stages run one after another in one Ray Train run (1 CPU worker in tests, N GPUs on a
cluster): (1) the cell and basis autoencoders learn to compress images that are drawn on the fly
from the structures (no image is ever stored); (2) the materials generator (VAE) learns the
distribution of ``[cell vector | basis vector per element | element counts]`` with the stability
classifier on its latent space.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalspace.gen.errors import GenError
from crystalspace.gen.images import ImageSpec, basis_images, cell_images, images, structure_tensors
from crystalspace.training import Task, TrainSession, check_finite

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import pyarrow as pa
    import torch
    from pymatgen.core import Structure


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

    def image_spec(self) -> ImageSpec:
        return ImageSpec(**{**self.spec, "elements": tuple(self.spec["elements"])})

    def stages(self, reused: bool) -> list[tuple[str, int]]:
        """(stage, epochs) in training order; the autoencoders only when not ``reused``."""
        vae = [("vae", self.epochs_vae)]
        return vae if reused else [("cell", self.epochs_cell), ("basis", self.epochs_basis), *vae]


# --------------------------------------------------------------- data arrays
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


def vae_weights(s: TrainSettings, in_dim: int, n_elements: int) -> torch.Tensor:
    """Per-number weights of the VAE's reconstruction loss: ``cell_weight`` on the cell code,
    ``count_weight`` on the element counts, 1 on the basis codes."""
    import torch

    w = torch.ones(in_dim)
    w[: s.cell_latent] = s.cell_weight
    w[in_dim - n_elements :] = s.count_weight
    return w


# ------------------------------------------------------------- the training
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


def autoencoder_epoch(
    net: Any, opt: Any, batches: Iterable[Any], images_of: Callable[[Any], Any], peak_weight: float
) -> float:
    """One epoch of an image autoencoder (``image_loss`` on ``images_of(idx)`` per index batch);
    the mean loss."""
    import torch

    from crystalspace.gen.models import image_loss

    net.train()
    losses = []
    for idx in batches:
        x = images_of(idx)
        loss = image_loss(net(x), x, peak_weight=peak_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return float(torch.stack(losses).mean())


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
    """Train an image autoencoder alone, in this process: Adam, cosine-decayed rate,
    :func:`autoencoder_epoch` per epoch; ``on_epoch(epoch, mean loss)`` runs after each epoch. A
    non-finite epoch loss raises :class:`~crystalspace.training.NonFiniteLossError`."""
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = _cosine(opt, epochs, lr_final)
    for epoch in range(epochs):
        mean = autoencoder_epoch(net, opt, batches(), images_of, peak_weight)
        sched.step()
        check_finite(mean, f"{name}, epoch {epoch}")
        if on_epoch is not None:
            on_epoch(epoch, mean)


NETS = {"cell": "cell_ae", "basis": "basis_ae", "vae": "vae"}  # stage -> network


class GenTask(Task):
    """The model set's training on one worker, one epoch of one stage at a time: the cell
    autoencoder, the basis autoencoder, then the VAE on the frozen image vectors. The last epoch
    adds the latent means ``mu`` of the dataset rows and the test stability accuracy.

    ``config`` (from :func:`train_generator`): ``settings``, ``arrays`` (structure tensors),
    ``split``, ``vae_train`` (rows of the VAE, with the extra cell settings), ``n_rows`` (dataset
    rows), ``stable`` and optionally ``autoencoders`` (weights to reuse: then only the VAE trains).
    """

    def __init__(self, config: dict[str, Any], session: TrainSession) -> None:
        import torch

        from crystalspace.gen.models import ConvAutoencoder, MaterialsVAE

        s = self.s = TrainSettings(**config["settings"])
        spec = self.spec = s.image_spec()
        self.rank, self.world, self.device = session.rank, session.world_size, session.device()
        torch.manual_seed(s.seed)
        self.arrays = {k: torch.as_tensor(v) for k, v in config["arrays"].items()}
        self.train_idx = torch.as_tensor(config["split"]["train"])  # stored cells: the autoencoders' rows
        self.test_idx = torch.as_tensor(config["split"]["test"])
        self.vae_idx = torch.as_tensor(config["vae_train"])  # plus the other cell settings, if any
        self.n_rows = int(config["n_rows"])
        self.stable = torch.as_tensor(config["stable"], device=self.device)
        n_el = len(spec.elements)
        self.in_dim = s.cell_latent + n_el * s.basis_latent + n_el
        self.nets: dict[str, Any] = {
            "cell_ae": ConvAutoencoder(spec.cell_grid, s.cell_latent, s.width),
            "basis_ae": ConvAutoencoder(spec.basis_grid, s.basis_latent, s.width),
            "vae": MaterialsVAE(self.in_dim, s.vae_latent, s.vae_hidden),
        }
        for key, weights in (config.get("autoencoders") or {}).items():
            self.nets[key].load_state_dict(weights)
        for net in self.nets.values():
            net.to(self.device)
        self.stages = s.stages(reused=bool(config.get("autoencoders")))
        self.epochs = sum(n for _, n in self.stages)
        self.trained = {stage: self._wrap(self.nets[NETS[stage]]) for stage, _ in self.stages}
        self.opts = {
            stage: torch.optim.Adam(net.parameters(), lr=s.lr) for stage, net in self.trained.items()
        }
        self.scheds = {stage: _cosine(self.opts[stage], n, s.lr_final) for stage, n in self.stages}
        self.weight = vae_weights(s, self.in_dim, n_el).to(self.device)
        self.history: list[dict[str, Any]] = []
        self.final: dict[str, Any] = {}
        self.inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.t0 = time.perf_counter()

    def _wrap(self, net: Any) -> Any:
        from ray.train.torch import prepare_model

        return prepare_model(net) if self.world > 1 else net

    def _seconds(self) -> float:
        return time.perf_counter() - self.t0

    def _stage(self, epoch: int) -> tuple[str, int]:
        """The stage of the run's ``epoch`` and the epoch within that stage."""
        for stage, n in self.stages:
            if epoch < n:
                return stage, epoch
            epoch -= n
        raise IndexError(f"epoch beyond the {self.epochs} of the run")

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        import torch

        gen = torch.Generator().manual_seed(self.s.seed + epoch)
        stage, e = self._stage(epoch)
        metrics = self._vae_epoch(e, gen) if stage == "vae" else self._ae_epoch(stage, e, gen)
        if epoch == self.epochs - 1:
            metrics = {**metrics, **self._finish()}
        return metrics

    def _ae_epoch(self, stage: str, epoch: int, gen: torch.Generator) -> dict[str, Any]:
        arrays, spec, device = self.arrays, self.spec, self.device

        def images_of(idx: torch.Tensor) -> torch.Tensor:
            if stage == "cell":  # only the images this stage trains on
                return cell_images(arrays, idx, spec, device)
            basis = basis_images(arrays, idx, spec, device)
            return basis.reshape(-1, 1, *basis.shape[2:])

        s = self.s
        batches = _batches(self.train_idx, s.batch_size, self.world, self.rank, gen)
        loss = autoencoder_epoch(
            self.trained[stage], self.opts[stage], batches, images_of, 0.0 if stage == "cell" else 10.0
        )
        self.scheds[stage].step()
        check_finite(loss, f"{stage} autoencoder, epoch {epoch}")
        m = {"stage": stage, "epoch": epoch, "loss": loss, "seconds": self._seconds()}
        self.history.append(m)
        return m

    def _vae_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised material vectors of every row (the frozen autoencoders' codes), mean, std."""
        import torch

        from crystalspace.gen.models import material_vectors

        if self.inputs is not None:
            return self.inputs
        cell_ae, basis_ae = self.nets["cell_ae"].eval(), self.nets["basis_ae"].eval()
        n_rows, bs, dev = len(self.arrays["metric"]), self.s.batch_size, self.device
        vecs = []
        with torch.no_grad():
            for i in range(0, n_rows, bs):
                idx = torch.arange(i, min(i + bs, n_rows))
                cell, basis = images(self.arrays, idx, self.spec, dev)
                vecs.append(
                    material_vectors(cell_ae, basis_ae, cell, basis, self.arrays["counts"][idx].to(dev))
                )
        x_all = torch.cat(vecs)
        mean = x_all[self.train_idx.to(dev)].mean(0)
        std = x_all[self.train_idx.to(dev)].std(0).clamp(min=1e-4)
        self.inputs = ((x_all - mean) / std, mean, std)
        return self.inputs

    def _vae_epoch(self, epoch: int, gen: torch.Generator) -> dict[str, Any]:
        import torch

        from crystalspace.gen.models import vae_loss

        s, xn = self.s, self._vae_inputs()[0]
        vae, opt = self.trained["vae"], self.opts["vae"]
        vae.train()
        parts: list[dict[str, torch.Tensor]] = []  # stays on the device: no host sync per step
        epoch_idx = torch.cat(_batches(self.vae_idx, s.batch_size, self.world, self.rank, gen)).to(
            self.device
        )
        for idx_d in epoch_idx.split(s.batch_size):
            loss, part = vae_loss(xn[idx_d], vae(xn[idx_d]), self.stable[idx_d], s.beta, s.gamma, self.weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            parts.append(part)
        self.scheds["vae"].step()
        means = {k: float(torch.stack([p[k] for p in parts]).mean()) for k in parts[0]}  # one sync
        check_finite(means["rec"] + means["kl"] + means["bce"], f"VAE, epoch {epoch}")
        m = {"stage": "vae", "epoch": epoch, **means, "seconds": self._seconds()}
        if epoch % 10 == 0 or epoch == s.epochs_vae - 1:
            self.history.append(m)
        return m

    def _finish(self) -> dict[str, Any]:
        """Latent means of the dataset rows and the test stability accuracy (after the last epoch)."""
        import torch

        xn, mean, std = self._vae_inputs()
        vae = self.nets["vae"].eval()
        with torch.no_grad():
            mu = vae.encode(xn[: self.n_rows])[0]  # the dataset rows only
            test = self.test_idx.to(self.device)
            hits = (vae.classifier(mu[test]).squeeze(-1) > 0) == self.stable[test].bool()
            acc = float(hits.float().mean())
        self.final = {"mu": mu.cpu(), "mean": mean.cpu(), "std": std.cpu()}
        self.history.append({"stage": "done", "test_stability_accuracy": acc, "seconds": self._seconds()})
        return {"test_stability_accuracy": acc}

    def save_state(self) -> dict[str, Any]:
        return {
            **{key: {k: v.cpu() for k, v in net.state_dict().items()} for key, net in self.nets.items()},
            "optimizers": {stage: opt.state_dict() for stage, opt in self.opts.items()},
            "schedulers": {stage: sched.state_dict() for stage, sched in self.scheds.items()},
            "history": self.history,
            "seconds": self._seconds(),
            "in_dim": self.in_dim,
            **self.final,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for key, net in self.nets.items():
            net.load_state_dict(state[key])
        for stage, opt in self.opts.items():
            opt.load_state_dict(state["optimizers"][stage])
            self.scheds[stage].load_state_dict(state["schedulers"][stage])
        self.history = state["history"]
        self.t0 = time.perf_counter() - state["seconds"]


def train_generator(
    data_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: TrainSettings,
    limit: int | None = None,
) -> dict[str, Any]:
    """Train the model set on the labelled VO dataset and save the model folder ``out``; returns
    the last history record (``stage: done``, the test stability accuracy)."""
    from crystalspace.atoms.io import table_to_rows
    from crystalspace.gen.dataset import load_labelled, row_structure
    from crystalspace.gen.generator import save_generator
    from crystalspace.training import RunSettings, TrainingError, run_training

    table = load_labelled(data_dir)
    if limit is not None:
        table = table.slice(0, limit)
    spec = settings.image_spec()
    structures = [row_structure(r) for r in table_to_rows(table)]
    split = split_indices(table, settings.test_fraction, settings.hold_out_known, settings.seed)
    if len(split["train"]) < 2:
        raise GenError(f"only {len(split['train'])} training rows; need at least 2")
    extra, origin = cyclic_cells(structures, split["train"], settings.cell_settings, spec)
    stable = np.asarray(table["stable"].to_pylist(), dtype=bool)
    cfg = {
        "settings": asdict(settings),
        "arrays": structure_tensors(structures + extra, spec, max_atoms=20),
        "split": split,
        "vae_train": np.concatenate([split["train"], len(structures) + np.arange(len(extra))]),
        "n_rows": len(structures),
        "stable": np.concatenate([stable, stable[origin]]),
        "autoencoders": reused_autoencoders(settings) if settings.autoencoders_from else None,
    }
    out = Path(out)
    run = RunSettings(
        name=f"gen-{int(time.time())}",
        storage_path=str(out.parent / "ray_results"),
        num_workers=settings.num_workers,
        use_gpu=settings.use_gpu,
    )
    epochs = sum(n for _, n in settings.stages(reused=bool(cfg["autoencoders"])))
    state = run_training(GenTask, cfg, run, epochs=epochs).state
    if state is None or "mu" not in state:
        raise TrainingError(f"{run.name} finished without a final checkpoint (no epochs to train?)")
    save_generator(out, settings, state, table, split)
    history: list[dict[str, Any]] = state["history"]
    return history[-1]


def reused_autoencoders(settings: TrainSettings) -> dict[str, Any]:
    """The image autoencoders of the model folder ``settings.autoencoders_from``, checked to have
    the sizes and image settings of ``settings`` (a VAE-only retrain, e.g. a β sweep)."""
    from crystalspace.gen.generator import open_model

    f = Path(str(settings.autoencoders_from))
    if not (f / "config.json").exists():
        raise GenError(f"autoencoders_from: no trained model in {f}")
    entry, weights = open_model(f)
    old = entry.config["settings"]
    new = json.loads(json.dumps(asdict(settings)))
    for key in ("cell_latent", "basis_latent", "width", "spec"):
        if old.get(key) != new[key]:
            raise GenError(
                f"autoencoders_from {f}: its {key} {old.get(key)} differs from this config's {new[key]}"
            )
    return {"cell_ae": weights["cell_ae"], "basis_ae": weights["basis_ae"]}
