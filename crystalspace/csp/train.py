"""Training: arrays, a plain torch fit loop, Ray Train (TorchTrainer) and Ray Tune glue."""

from __future__ import annotations

import json
import os
import tempfile
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
from crystalspace.registry import load_tensors

BUNDLE_FORMAT = 2  # 1: the old aux.pkl bundles, refused on load
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


def fit(
    train: Arrays, cfg: TrainConfig, bins: Bins | None, device: str = "cpu", report: Any = None
) -> DistanceNet:
    """Train a :class:`DistanceNet` (optionally inside a Ray Train worker: DDP via ``prepare_model``)."""
    torch.manual_seed(cfg.seed)
    net_cfg = NetConfig(n_out=bins.n if bins else 1, **cfg.net)
    model: torch.nn.Module = DistanceNet(net_cfg).to(device)
    if report is not None:
        import ray.train.torch

        model = ray.train.torch.prepare_model(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x, m, d = (torch.as_tensor(a) for a in (train.x, train.mask, train.d))
    pm = torch.as_tensor(pair_mask(train.mask))
    gen = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), cfg.batch_size):
            b = perm[i : i + cfg.batch_size]
            if len(b) < 2:
                continue
            out = model(x[b].to(device), m[b].to(device))
            loss = _loss(out, d[b].to(device), pm[b].to(device), bins)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(b)
        if report is not None:
            report(epoch, total / len(x), model)
    net = model.module if hasattr(model, "module") else model
    assert isinstance(net, DistanceNet)
    return net


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


def _train_loop(config: dict[str, Any]) -> None:
    """Ray Train worker loop: fit on this worker, rank 0 reports test metrics and a checkpoint."""
    import ray.train

    cfg: TrainConfig = config["cfg"]
    bins: Bins | None = config["bins"]
    torch.set_num_threads(1)

    def report(epoch: int, loss: float, model: torch.nn.Module) -> None:
        if epoch < cfg.epochs - 1:
            ray.train.report({"epoch": epoch, "loss": loss})
            return
        net = model.module if hasattr(model, "module") else model
        assert isinstance(net, DistanceNet)
        res = {"epoch": epoch, "loss": loss, **evaluate(net, config["test"], bins)}
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if ray.train.get_context().get_world_rank() == 0:
                torch.save(net.state_dict(), os.path.join(tmp, "model.pt"))
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(res, checkpoint=ckpt)

    fit(config["train"], cfg, bins, report=report)


def train_ray(
    train: Arrays,
    test: Arrays,
    cfg: TrainConfig,
    bins: Bins | None,
    storage: Path,
    num_workers: int = 1,
    use_gpu: bool = False,
) -> tuple[DistanceNet, dict[str, float]]:
    """Train with Ray Train's TorchTrainer; return the model (from rank 0's checkpoint) and test metrics."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"cfg": cfg, "bins": bins, "train": train, "test": test},
        scaling_config=ScalingConfig(
            num_workers=num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}
        ),
        run_config=RunConfig(storage_path=str(storage.resolve()), name="csp_train"),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train produced no checkpoint: {result.error}")
    model = DistanceNet(NetConfig(n_out=bins.n if bins else 1, **cfg.net))
    with result.checkpoint.as_directory() as d:
        model.load_state_dict(load_tensors(os.path.join(d, "model.pt")))
    final = result.metrics or {}
    return model, {k: float(final[k]) for k in ("mse", "rmse", "overlap")}


def save_bundle(
    path: Path,
    model: DistanceNet,
    cfg: TrainConfig,
    bins: Bins | None,
    std: Standardiser,
    lattice: LatticeModel,
    info: dict[str, Any],
) -> None:
    """Write the bundle atomically to directory ``path``: ``model.pt`` (the network's state dict),
    ``config.json`` (train and net settings, bins, standardiser), ``lattice.skops`` (the forests)
    and ``info.json`` (metrics). Nothing in it runs code when loaded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    torch.save(model.state_dict(), tmp / "model.pt")
    config = {
        "format": BUNDLE_FORMAT,
        "train": asdict(cfg),
        "net": model.cfg.to_dict(),
        "bins": None if bins is None else {"lo": bins.lo, "hi": bins.hi, "n": bins.n},
        "standardiser": {"mean": std.mean.tolist(), "std": std.std.tolist()},
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=1))
    lattice.save(tmp / "lattice.skops")
    (tmp / "info.json").write_text(json.dumps(info, indent=2))
    if path.exists():
        import shutil

        shutil.rmtree(path)
    tmp.rename(path)


def load_bundle(path: Path) -> dict[str, Any]:
    """Load what :func:`save_bundle` wrote (keys ``cfg``, ``bins``, ``std``, ``lattice``, ``net``,
    ``model``, ``info``); one-line errors for an empty folder or an old ``aux.pkl`` bundle."""
    if (path / "aux.pkl").exists() and not (path / "config.json").exists():
        raise OldBundleError(
            f"{path} holds a CSP model saved by an older crystalspace in pickle format (aux.pkl), "
            f"which is never loaded (it could run code); {_RETRAIN.replace('DIR', str(path))}"
        )
    if not all((path / f).exists() for f in ("model.pt", "config.json", "lattice.skops")):
        raise ModelMissingError(
            f"no trained CSP model in {path}; run `crystalspace csp train --config pipelines/configs/csp_small.yaml` first (a few minutes on CPU)"
        )
    config = json.loads((path / "config.json").read_text())
    net = NetConfig(**config["net"])
    model = DistanceNet(net)
    model.load_state_dict(load_tensors(path / "model.pt", remedy=_RETRAIN.replace("DIR", str(path))))
    model.eval()
    b = config["bins"]
    st = config["standardiser"]
    return {
        "cfg": TrainConfig(**config["train"]),
        "bins": None if b is None else Bins(float(b["lo"]), float(b["hi"]), int(b["n"])),
        "std": Standardiser(
            np.asarray(st["mean"], dtype=np.float64), np.asarray(st["std"], dtype=np.float64)
        ),
        "lattice": LatticeModel.load(path / "lattice.skops"),
        "net": net,
        "model": model,
        "info": json.loads((path / "info.json").read_text()),
    }
