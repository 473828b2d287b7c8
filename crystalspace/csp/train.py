"""Training the distance network: padded arrays, :class:`DistanceTask` (one epoch at a time, for
the one runner :mod:`crystalspace.training`: Ray Train, checkpoints, resume, NaN guard) and the
saved model, a registry entry (:mod:`crystalspace.registry`) with the lattice forests as artefact."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crystalspace.csp.data import Entry
from crystalspace.csp.features import Standardiser, encode, species_of
from crystalspace.csp.lattice import LatticeModel
from crystalspace.csp.model import DistanceNet, NetConfig
from crystalspace.csp.target import Bins, distance_matrix, metrics, pair_mask
from crystalspace.errors import UserError
from crystalspace.registry import load_entry, write_entry
from crystalspace.training import (
    LocalSession,
    RunSettings,
    Task,
    TrainingError,
    TrainSession,
    check_finite,
    run_task,
    run_training,
)

ARCH = "distancenet"
LATTICE = "lattice.skops"
_RETRAIN = "retrain it: `crystalspace csp train --config pipelines/configs/csp_small.yaml --model-dir DIR`"


class ModelMissingError(UserError, FileNotFoundError):
    """No trained CSP model in the given directory."""


class OldBundleError(UserError, ValueError):
    """A CSP model folder written by an older version (an ``aux.pkl`` file), which is never read."""


@dataclass
class TrainConfig:
    """Training settings (study: Adam 1e-3, 125 epochs)."""

    n_bins: int = 10  # 0 = direct regression
    epochs: int = 125
    batch_size: int = 64
    lr: float = 1e-3
    max_atoms: int = 12
    seed: int = 0
    net: dict[str, int] = field(default_factory=dict)


@dataclass
class Arrays:
    """Padded model inputs and targets."""

    x: np.ndarray
    mask: np.ndarray
    d: np.ndarray

    @classmethod
    def of(cls, entries: list[Entry], std: Standardiser, max_atoms: int = 12) -> Arrays:
        xs, ms, ds = [], [], []
        for e in entries:
            x, m = encode(species_of(e.structure), std, max_atoms)
            xs.append(x)
            ms.append(m)
            ds.append(distance_matrix(e.structure, max_atoms))
        return cls(np.stack(xs), np.stack(ms), np.stack(ds))


def _loss(out: torch.Tensor, d: torch.Tensor, pm: torch.Tensor, bins: Bins | None) -> torch.Tensor:
    if bins is None:
        return ((out[:, 0] - d) ** 2)[pm].mean()
    idx = (
        torch.from_numpy(bins.index(d.numpy()))
        if d.device.type == "cpu"
        else torch.bucketize(d, torch.as_tensor(bins.edges[1:-1], device=d.device, dtype=d.dtype))
    )
    ce = torch.nn.functional.cross_entropy(out, idx.to(out.device), reduction="none")
    return ce[pm].mean()


def expected_distance(out: torch.Tensor, bins: Bins | None) -> torch.Tensor:
    """Expected distance under the predicted bin distribution (or the regressed value)."""
    if bins is None:
        return out[:, 0]
    c = torch.as_tensor(bins.centres, dtype=out.dtype, device=out.device)
    return (out.softmax(1) * c[None, :, None, None]).sum(1)


class DistanceTask(Task):
    """The distance network's training on one worker: Adam, one shuffled pass over this worker's
    share of the rows per epoch; the last epoch adds the test metrics when ``config`` has ``test``.

    ``config``: ``cfg`` (:class:`TrainConfig`), ``bins`` (None: regression), ``train`` and
    optionally ``test`` (:class:`Arrays`).
    """

    def __init__(self, config: dict[str, Any], session: TrainSession) -> None:
        self.cfg: TrainConfig = config["cfg"]
        self.bins: Bins | None = config["bins"]
        self.test: Arrays | None = config.get("test")
        self.epochs, self.rank, self.world = self.cfg.epochs, session.rank, session.world_size
        self.device = torch.device(session.device())
        torch.manual_seed(self.cfg.seed)
        self.net = DistanceNet(NetConfig(n_out=self.bins.n if self.bins else 1, **self.cfg.net)).to(
            self.device
        )
        self.model: torch.nn.Module = self.net
        if self.world > 1:
            import ray.train.torch

            self.model = ray.train.torch.prepare_model(self.net)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        train: Arrays = config["train"]
        self.x, self.m, self.d = (torch.as_tensor(a) for a in (train.x, train.mask, train.d))
        self.pm = torch.as_tensor(pair_mask(train.mask))
        self.test_metrics: dict[str, float] | None = None

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        cfg, dev = self.cfg, self.device
        gen = torch.Generator().manual_seed(cfg.seed + epoch)
        mine = torch.randperm(len(self.x), generator=gen)[self.rank :: self.world]
        self.model.train()
        total = 0.0
        for i in range(0, len(mine), cfg.batch_size):
            b = mine[i : i + cfg.batch_size]
            if len(b) < 2:
                continue
            out = self.model(self.x[b].to(dev), self.m[b].to(dev))
            loss = _loss(out, self.d[b].to(dev), self.pm[b].to(dev), self.bins)
            check_finite(loss.detach(), f"epoch {epoch} batch {i // cfg.batch_size}")
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            total += float(loss.detach()) * len(b)
        result: dict[str, Any] = {"loss": total / max(len(mine), 1)}
        if epoch == self.epochs - 1 and self.test is not None:
            self.test_metrics = evaluate(self.net, self.test, self.bins)
            result.update(self.test_metrics)
        return result

    def save_state(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "optimizer": self.opt.state_dict(), "test": self.test_metrics}

    def load_state(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.test_metrics = state["test"]


def fit(train: Arrays, cfg: TrainConfig, bins: Bins | None, device: str = "cpu") -> DistanceNet:
    """Train a :class:`DistanceNet` in this process (no Ray Train), e.g. inside a Tune trial."""
    task = run_task(DistanceTask, {"cfg": cfg, "bins": bins, "train": train}, LocalSession(device))
    assert isinstance(task, DistanceTask)
    return task.net


@torch.no_grad()
def predict_distances(model: DistanceNet, arr: Arrays, bins: Bins | None, batch: int = 256) -> np.ndarray:
    """Predicted (expected) distance matrices."""
    model.eval()
    dev = next(model.parameters()).device
    outs = []
    for i in range(0, len(arr.x), batch):
        out = model(
            torch.as_tensor(arr.x[i : i + batch], device=dev),
            torch.as_tensor(arr.mask[i : i + batch], device=dev),
        )
        outs.append(expected_distance(out, bins).cpu().numpy())
    return np.concatenate(outs)


def evaluate(model: DistanceNet, arr: Arrays, bins: Bins | None) -> dict[str, float]:
    """Test metrics: distance MSE/RMSE in A and overlap at 8 A over real pairs."""
    return metrics(predict_distances(model, arr, bins), arr.d, pair_mask(arr.mask))


def train_distance_net(
    train: Arrays,
    test: Arrays,
    cfg: TrainConfig,
    bins: Bins | None,
    storage: Path,
    num_workers: int = 1,
    use_gpu: bool = False,
) -> tuple[DistanceNet, dict[str, float]]:
    """Train through the runner (Ray Train, ``storage`` for its checkpoints); the trained network
    and its test metrics."""
    config = {"cfg": cfg, "bins": bins, "train": train, "test": test}
    settings = RunSettings(
        name="csp_train", storage_path=str(storage), num_workers=num_workers, use_gpu=use_gpu
    )
    state = run_training(DistanceTask, config, settings, epochs=cfg.epochs).state
    if state is None or state.get("test") is None:
        raise TrainingError(f"CSP training in {storage} finished without a final checkpoint")
    model = DistanceNet(NetConfig(n_out=bins.n if bins else 1, **cfg.net))
    model.load_state_dict(state["model"])
    return model.eval(), {k: float(state["test"][k]) for k in ("mse", "rmse", "overlap")}


def save_model(
    path: Path,
    model: DistanceNet,
    cfg: TrainConfig,
    bins: Bins | None,
    std: Standardiser,
    lattice: LatticeModel,
    metrics: dict[str, Any],
    data: dict[str, Any] | None = None,
) -> Path:
    """Write the trained model as a registry entry at ``path`` (replacing one there): ``model.pt``
    (the network), ``config.json`` (train and net settings, bins, standardiser, ``data``),
    ``metrics.json``, ``card.md`` and the artefact ``lattice.skops`` (the forests)."""
    data = data or {}
    config = {
        "arch": ARCH,
        "dataset": Path(data["table"]).name.split(".")[0].lower() if data.get("table") else "mp",
        "train": asdict(cfg),
        "net": model.cfg.to_dict(),
        "bins": None if bins is None else {"lo": bins.lo, "hi": bins.hi, "n": bins.n},
        "standardiser": {"mean": std.mean.tolist(), "std": std.std.tolist()},
        "data": data,
    }
    card = _card(config, metrics)
    return write_entry(
        path, config, model.state_dict(), metrics, card, {LATTICE: lattice.to_bytes()}, overwrite=True
    )


def load_model(path: Path) -> dict[str, Any]:
    """Load what :func:`save_model` wrote (keys ``cfg``, ``bins``, ``std``, ``lattice``, ``net``,
    ``model``, ``info`` (the metrics)); one-line errors for an empty folder or an older model."""
    if (path / "aux.pkl").exists() and not (path / "config.json").exists():
        raise OldBundleError(
            f"{path} holds a CSP model saved by an older crystalspace in pickle format (aux.pkl), "
            f"which is never loaded (it could run code); {_RETRAIN.replace('DIR', str(path))}"
        )
    if not (path / "config.json").exists():
        raise ModelMissingError(
            f"no trained CSP model in {path}; run `crystalspace csp train --config pipelines/configs/csp_small.yaml` first (a few minutes on CPU)"
        )
    entry = load_entry(path, remedy=_RETRAIN.replace("DIR", str(path)))
    config = entry.config
    net = NetConfig(**config["net"])
    model = DistanceNet(net)
    model.load_state_dict(entry.state_dict())
    model.eval()
    b = config["bins"]
    st = config["standardiser"]
    return {
        "cfg": TrainConfig(**config["train"]),
        "bins": None if b is None else Bins(float(b["lo"]), float(b["hi"]), int(b["n"])),
        "std": Standardiser(
            np.asarray(st["mean"], dtype=np.float64), np.asarray(st["std"], dtype=np.float64)
        ),
        "lattice": LatticeModel.load(entry.artefact(LATTICE)),
        "net": net,
        "model": model,
        "info": entry.metrics,
    }


def _card(config: dict[str, Any], m: dict[str, Any]) -> str:
    t, d = config["train"], m.get("distance", {})
    bins = config["bins"]
    head = f"{bins['n']} distance bins" if bins else "direct distance regression"
    return (
        "# CSP distance network (AlphaCrystal-II)\n\n"
        f"- what: residual network from composition to the cell's distance matrix ({head}), "
        f"with random forests for the lattice and space group (`{LATTICE}`)\n"
        f"- data: `{config['dataset']}` {config['data']}, {m.get('n_train', '?')} training / "
        f"{m.get('n_test', '?')} test structures, split by formula\n"
        f"- metrics: test distance RMSE {d.get('rmse', float('nan')):.3f} Å, overlap at 8 Å "
        f"{d.get('overlap', float('nan')):.3f}; lattice {m.get('lattice', {})}\n"
        f"- trained: Adam lr {t['lr']}, {t['epochs']} epochs, batch {t['batch_size']}, seed {t['seed']}, "
        "on Ray Train (`crystalspace.training`)\n"
        "- use: `crystalspace csp predict FORMULA --model-dir PATH`; "
        "`crystalspace.csp.workflow.load(PATH)` in Python\n"
    )
