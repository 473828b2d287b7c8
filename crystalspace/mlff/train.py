"""Training a force field on Ray Train (any model of the zoo, 1 CPU worker to N GPUs).

Loss = ``energy_weight``·MSE(E/atom) + ``force_weight``·MSE(F) (the study weighted energy to forces
1:1000), Adam with ``ReduceLROnPlateau`` on the validation loss, optional EMA of the weights,
a wall-clock budget, per-epoch metrics (``val_energy_mae`` eV/atom, ``val_force_mae`` eV/Å,
``val_force_r2`` mean R² over x, y, z), one checkpoint per epoch: :class:`ForceFieldTask` trains
through the one runner (:mod:`crystalspace.training`). The best validation model is written to the
registry (``<arch>-<dataset>-<version>/``) with a learning-curve PNG next to it.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crystalspace.mlff.config import MLFFConfig
from crystalspace.mlff.data import labelled_rows, load_material, split_frames
from crystalspace.training import Budget, Task, TrainSession, check_finite

log = logging.getLogger(__name__)
CURVE_KEYS = ("train_loss", "val_loss", "val_energy_mae", "val_force_mae", "val_force_r2")


@dataclass
class TrainedModel:
    """A finished run: its registry entry, per-epoch history and learning-curve figure."""

    entry: Path
    history: list[dict[str, Any]]
    curve: Path
    metrics: dict[str, Any]


def rows_to_graphs(
    rows: list[dict[str, Any]], cutoff: float, max_neighbors: int, offset: int = 0
) -> list[Any]:
    """Graphs of labelled rows, each tagged with its ``frame`` index (for error messages)."""
    import torch

    from crystalspace.atoms.graph import row_to_graph

    graphs = []
    for k, row in enumerate(rows):
        g = row_to_graph(row, cutoff, max_neighbors)
        g.frame = torch.tensor([offset + k])
        graphs.append(g)
    return graphs


def force_metrics(
    pred_e: np.ndarray, true_e: np.ndarray, natoms: np.ndarray, pred_f: np.ndarray, true_f: np.ndarray
) -> dict[str, float]:
    """Energy MAE per atom (eV/atom), energy R², force MAE (eV/Å) and mean per-component force R²."""
    pe, te = pred_e / natoms, true_e / natoms
    r2 = [_r2(pred_f[:, c], true_f[:, c]) for c in range(3)]
    return {
        "energy_mae": float(np.mean(np.abs(pe - te))),
        "energy_r2": _r2(pred_e, true_e),
        "force_mae": float(np.mean(np.abs(pred_f - true_f))),
        "force_r2": float(np.mean(r2)),
    }


def _r2(pred: np.ndarray, true: np.ndarray) -> float:
    ss = float(np.sum((true - true.mean()) ** 2))
    return float("nan") if ss == 0 else 1.0 - float(np.sum((pred - true) ** 2)) / ss


def predict_graphs(
    potential: Any, graphs: list[Any], batch_size: int, device: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Energies (B,) and forces (N, 3) of graphs, in batches (numpy, eV and eV/Å)."""
    from torch_geometric.loader import DataLoader

    energies, forces = [], []
    for batch in DataLoader(graphs, batch_size=batch_size, shuffle=False):
        out = potential(batch.to(device), forces=True)
        energies.append(out.energy.detach().cpu().numpy())
        forces.append(out.forces.detach().cpu().numpy())
    return np.concatenate(energies), np.concatenate(forces)


def recenter_energy(model: Any, per_atom: Any, elements: Any) -> None:
    """Shift the reference energies of the training elements by the mean per-atom energy residual.

    The energy offset is a free constant for forces, and with the study's 1:1000 weighting it
    drifts while forces are learned; moving it after each epoch (averaged over DDP workers) costs
    nothing and does not change forces.
    """
    import torch
    import torch.distributed as dist

    if per_atom is None:
        return
    delta = per_atom.detach().to(model.atom_ref.device, model.atom_ref.dtype).reshape(1)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(delta)
        delta /= dist.get_world_size()
    with torch.no_grad():
        model.atom_ref[elements.to(model.atom_ref.device)] += delta


class ForceFieldTask(Task):
    """One force field's training on one worker (see the module docstring), driven by
    :func:`crystalspace.training.run_task`.

    ``config`` holds ``cfg`` (an :class:`MLFFConfig` as a dict), the ``train_rows``/``val_rows``
    (lists of labelled rows or object refs to them) and optionally ``crash_once_at_epoch`` (a
    test hook: fail that epoch unless resumed). ``session`` is a Ray Train worker or, inside a
    Tune trial, a :class:`~crystalspace.training.TuneSession`.
    """

    def __init__(self, config: dict[str, Any], session: TrainSession) -> None:
        import ray
        import torch
        from torch_geometric.loader import DataLoader

        from crystalspace.mlff.models import build_model
        from crystalspace.mlff.potential import Potential

        cfg = self.cfg = MLFFConfig(**config["cfg"])
        self.epochs, self.crash_at = cfg.epochs, config.get("crash_once_at_epoch")
        self.rank, self.world = session.rank, session.world_size
        torch.manual_seed(cfg.seed)
        if not cfg.use_gpu:
            torch.set_num_threads(1)
        self.device = session.device()
        train_rows, val_rows = (
            ray.get(r) if isinstance(r, ray.ObjectRef) else r
            for r in (config["train_rows"], config["val_rows"])
        )
        model = self.model = build_model(cfg.model, **cfg.model_hparams())
        model.fit_scale(
            [r["numbers"] for r in train_rows],
            np.array([r["energy"] for r in train_rows]),
            np.concatenate([r["forces"] for r in train_rows]),
        )
        pot = Potential(model, cfg.max_neighbors).to(self.device)
        if self.world > 1:
            from ray.train.torch import prepare_model

            self.net = prepare_model(pot)
        else:
            self.net = pot
        mine = list(range(self.rank, len(train_rows), self.world))
        train_graphs = rows_to_graphs([train_rows[i] for i in mine], cfg.cutoff, cfg.max_neighbors)
        for g, i in zip(train_graphs, mine, strict=True):
            g.frame = torch.tensor([i])
        self.val_graphs = rows_to_graphs(val_rows, cfg.cutoff, cfg.max_neighbors)
        self.train_elements = torch.unique(
            torch.cat([torch.as_tensor(r["numbers"]).long() for r in train_rows])
        )
        self.opt = torch.optim.Adam(pot.parameters(), lr=cfg.lr)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt, factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
        self.ema = None
        if cfg.ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(
                model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
            )
        gen = torch.Generator().manual_seed(cfg.seed + self.rank)
        self.loader = DataLoader(train_graphs, batch_size=cfg.batch_size, shuffle=True, generator=gen)
        self.resumed, self.best = False, float("inf")
        self.best_state: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.budget = Budget(cfg.time_budget_s)

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.history, self.best, self.best_state = state["history"], state["best_val"], state["best_state"]
        self.budget = Budget(self.cfg.time_budget_s, already=state["spent"])
        self.resumed = True

    def save_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "best_val": self.best,
            "best_state": self.best_state,
            "spent": self.budget.spent,
            "history": self.history,
        }

    def finished(self) -> bool:
        return self.budget.expired()

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        import torch

        from crystalspace.mlff.potential import Potential

        cfg, model, ema = self.cfg, self.model, self.ema
        if self.crash_at is not None and epoch == self.crash_at and not self.resumed:
            raise RuntimeError(f"injected worker failure at epoch {epoch}")
        t0, losses, residual = time.perf_counter(), [], []
        self.net.train()
        for b, batch in enumerate(self.loader):
            batch = batch.to(self.device)
            out = self.net(batch, forces=True, training=True)
            n = batch.natoms.to(out.energy.dtype)
            e_loss = torch.mean(((out.energy - batch.energy) / n) ** 2)
            f_loss = torch.mean((out.forces - batch.forces) ** 2)
            loss = cfg.energy_weight * e_loss + cfg.force_weight * f_loss
            check_finite(loss.detach(), f"epoch {epoch} batch {b} (training frames {batch.frame.tolist()})")
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(float(loss.detach()))
            residual.append(((batch.energy - out.energy.detach()) / n).mean())
            if self.budget.expired():
                break
        train_s = time.perf_counter() - t0
        recenter_energy(model, torch.stack(residual).mean() if residual else None, self.train_elements)
        evaluator = Potential(model if ema is None else ema.module, cfg.max_neighbors).eval()  # type: ignore[arg-type]
        pe, pf = predict_graphs(evaluator, self.val_graphs, cfg.batch_size, self.device)
        te = np.array([float(g.energy) for g in self.val_graphs])
        tf = np.concatenate([g.forces.numpy() for g in self.val_graphs])
        natoms = np.array([g.num_nodes for g in self.val_graphs])
        m = force_metrics(pe, te, natoms, pf, tf)
        val_loss = cfg.energy_weight * float(np.mean(((pe - te) / natoms) ** 2)) + cfg.force_weight * float(
            np.mean((pf - tf) ** 2)
        )
        self.sched.step(val_loss)
        if val_loss < self.best:
            self.best = val_loss
            self.best_state = copy.deepcopy((ema.module if ema is not None else model).state_dict())
        metrics = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_loss": val_loss,
            **{f"val_{k}": v for k, v in m.items()},
            "lr": self.opt.param_groups[0]["lr"],
            "epoch_s": time.perf_counter() - t0,
            "train_s": train_s,
            "train_structures_per_s": len(losses) * cfg.batch_size * self.world / max(train_s, 1e-9),
        }
        self.history.append({**metrics, "resumed": self.resumed})
        if self.rank == 0:
            log.warning("epoch %d: val force MAE %.4f eV/Å, val loss %.4g", epoch, m["force_mae"], val_loss)
        return metrics


def train_model(
    cfg: MLFFConfig, run_name: str | None = None, crash_once_at_epoch: int | None = None
) -> TrainedModel:
    """Split the data, train on Ray Train, save the best model to the registry, plot the curves."""
    import ray

    from crystalspace.mlff.models import build_model
    from crystalspace.registry import next_version, save_entry
    from crystalspace.runtime import init_ray
    from crystalspace.training import RunSettings, plot_learning_curves, run_training

    arch = build_model(cfg.model, **cfg.model_hparams()).arch  # fails early on an unknown name
    table = load_material(cfg.data, cfg.train_material, cfg.phase)
    split = split_frames(table, cfg.train_per_temperature, cfg.val_per_temperature, cfg.test_frames, cfg.seed)
    train_rows = labelled_rows(table, split.train, f"{cfg.train_material} training frames")
    val_rows = labelled_rows(table, split.val, f"{cfg.train_material} validation frames")
    init_ray()
    version = next_version(cfg.registry, arch, cfg.dataset_name)
    name = run_name or f"{arch}-{cfg.dataset_name}-{version}-{time.strftime('%Y%m%d-%H%M%S')}"
    settings = RunSettings(
        name=name,
        storage_path=str(Path(cfg.out).resolve() / "ray"),
        num_workers=cfg.num_workers,
        use_gpu=cfg.use_gpu,
        max_failures=cfg.max_failures,
    )
    loop_config = {
        "cfg": cfg.model_dump(),
        "train_rows": ray.put(train_rows),
        "val_rows": ray.put(val_rows),
        "crash_once_at_epoch": crash_once_at_epoch,
    }
    outcome = run_training(ForceFieldTask, loop_config, settings, epochs=cfg.epochs)
    if outcome.state is None or outcome.state.get("best_state") is None:
        from crystalspace.training import TrainingError

        raise TrainingError(f"run {name} finished without a checkpoint (budget too small?)")
    history = outcome.state["history"]
    best = min(history, key=lambda r: r["val_loss"])
    metrics = {
        "best_epoch": int(best["epoch"]),
        **{k: float(v) for k, v in best.items() if k.startswith("val_")},
        "epochs_run": len(history),
        "train_frames": len(train_rows),
        "val_frames": len(val_rows),
        "history": [
            {k: (float(v) if isinstance(v, int | float | np.number) else v) for k, v in r.items()}
            for r in history
        ],
    }
    config = {
        "hparams": cfg.model_hparams(),
        "max_neighbors": cfg.max_neighbors,
        "conservative": bool(build_model(cfg.model, **cfg.model_hparams()).conservative),
        "train": cfg.model_dump(),
        "run": outcome.path,
    }
    entry = save_entry(
        cfg.registry,
        arch,
        cfg.dataset_name,
        outcome.state["best_state"],
        config,
        metrics,
        _card(arch, cfg, metrics),
        version,
    )
    curve = plot_learning_curves(
        history, Path(cfg.out) / f"{entry.name}_learning_curve.png", CURVE_KEYS, entry.name
    )
    return TrainedModel(entry=entry, history=history, curve=curve, metrics=metrics)


def _card(arch: str, cfg: MLFFConfig, m: dict[str, Any]) -> str:
    return (
        f"# {arch} force field trained on {cfg.train_material}\n\n"
        f"- architecture: `{arch}` ({cfg.model_hparams()}), max neighbours {cfg.max_neighbors}\n"
        f"- data: `{cfg.data}`, {m['train_frames']} training / {m['val_frames']} validation frames "
        f"({cfg.train_per_temperature} + {cfg.val_per_temperature} per temperature, phase {cfg.phase}, seed {cfg.seed})\n"
        f"- loss: {cfg.energy_weight} × MSE(E/atom) + {cfg.force_weight} × MSE(F); Adam lr {cfg.lr}, "
        f"ReduceLROnPlateau, EMA {cfg.ema_decay}\n"
        f"- best epoch {m['best_epoch']} of {m['epochs_run']}: validation force MAE "
        f"{m['val_force_mae']:.4f} eV/Å, force R² {m['val_force_r2']:.3f}, energy MAE {m['val_energy_mae'] * 1000:.2f} meV/atom\n"
        "- labels are CHGNet predictions when trained on the crystalspace reference set, not DFT.\n"
        "- load: `crystalspace.mlff.potential.load_potential(path)`; ASE: `crystalspace.potentials.ProviderCalculator(path)`.\n"
    )
