"""Generic Ray Train runner: any ``train_loop_per_worker`` on 1 CPU worker or N GPUs, resumable.

The driver side is :func:`run_training` (a ``TorchTrainer`` with a ``ScalingConfig``, a
``RunConfig`` with an absolute storage path, a ``FailureConfig`` so a failed worker group restarts
from the last checkpoint, and a ``CheckpointConfig`` keeping the latest ones). The worker side has
the helpers every loop needs, whatever the model:

- :func:`report_epoch` reports metrics through ``ray.train.report`` and (rank 0) a checkpoint of an
  arbitrary state dict; :func:`latest_state` returns the state to resume from (or None).
  :class:`TrainSession` bundles these for a loop, and :class:`TuneSession` lets the same loop run
  as a Ray Tune trial instead (see :mod:`crystalspace.tune`).
- :func:`check_finite` stops with :class:`NonFiniteLossError` naming the batch;
  :func:`guarded` turns that into the worker's return value, so the run stops once, without retries and
  without writing a checkpoint, and :func:`run_training` raises it on the driver.
- :class:`Budget` is a wall-clock budget; :func:`plot_learning_curves` writes the PNG.

Loops keep the best validation model *inside* their state (``best_state``), so the latest
checkpoint is enough to resume and to export the best model.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crystalspace.errors import UserError

STATE_FILE = "state.pt"
ERROR_KEY = "error"


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN or infinite (the message names the batch)."""


class TrainingError(UserError, RuntimeError):
    """A training run that failed for a reason the user can act on."""


@dataclass
class TrainSettings:
    """Where and how a run executes (all model-agnostic).

    Attributes:
        name: run name (a directory under ``storage_path``; the same name resumes).
        storage_path: where Ray Train keeps checkpoints and results (made absolute; a URI works).
        num_workers: data-parallel workers (1 CPU worker in tests, N GPUs on a cluster).
        use_gpu: one GPU per worker.
        cpus_per_worker: CPUs reserved per worker.
        max_failures: worker-group restarts allowed (each resumes from the last checkpoint).
        num_to_keep: checkpoints kept (the latest ones).
    """

    name: str
    storage_path: str
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: int = 1
    max_failures: int = 1
    num_to_keep: int = 2


@dataclass
class TrainOutcome:
    """What a finished run left: per-epoch metrics, the final state and where the run lives."""

    history: list[dict[str, Any]]
    state: dict[str, Any] | None
    path: str
    extra: dict[str, Any] = field(default_factory=dict)


def run_training(
    loop: Callable[[dict[str, Any]], None],
    loop_config: dict[str, Any],
    settings: TrainSettings,
    epochs: int | None = None,
) -> TrainOutcome:
    """Run ``loop(loop_config)`` on every worker through ``TorchTrainer`` and collect the outcome.

    With ``epochs`` given, progress (one step per checkpoint written) is shown while it runs.

    Raises :class:`NonFiniteLossError` (or :class:`TrainingError`) when a worker reported one.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage = settings.storage_path
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
        Path(storage).mkdir(parents=True, exist_ok=True)
    trainer = TorchTrainer(
        guarded(loop),  # type: ignore[arg-type]
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=settings.num_workers,
            use_gpu=settings.use_gpu,
            resources_per_worker={
                "CPU": settings.cpus_per_worker,
                **({"GPU": 1} if settings.use_gpu else {}),
            },
        ),
        run_config=RunConfig(
            name=settings.name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=settings.num_to_keep),
        ),
    )
    result = _fit_with_progress(
        trainer, Path(storage) / settings.name if "://" not in storage else None, epochs
    )
    raise_returned_error(result)
    frame = result.metrics_dataframe  # metrics of the kept checkpoints only; loops keep full history
    history = [] if frame is None else frame.to_dict("records")
    history = [{k: v for k, v in r.items() if not k.startswith(("config", "_"))} for r in history]
    state = _load_state(result.checkpoint) if result.checkpoint is not None else None
    return TrainOutcome(history=history, state=state, path=str(Path(storage) / settings.name))


def _fit_with_progress(trainer: Any, run_dir: Path | None, epochs: int | None) -> Any:
    """``trainer.fit()`` in a thread while the caller's thread counts new checkpoint directories."""
    import threading

    from crystalspace.runtime import progress

    if run_dir is None or epochs is None:
        return trainer.fit()
    box: dict[str, Any] = {}

    def fit() -> None:
        try:
            box["result"] = trainer.fit()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    seen: set[str] = set()
    with progress(epochs, f"training {run_dir.name}", unit="epochs", step="epochs") as bar:
        while thread.is_alive():
            thread.join(timeout=2.0)
            new = {p.name for p in run_dir.glob("checkpoint_*") if p.is_dir()} - seen
            for name in sorted(new):
                seen.add(name)
                bar.advance(1)
    if "error" in box:
        raise box["error"]
    return box["result"]


def guarded(loop: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], dict[str, str] | None]:
    """Wrap a loop so a :class:`UserError` ends the run once (returned, no checkpoint), not retried."""

    def train_loop_per_worker(config: dict[str, Any]) -> dict[str, str] | None:
        try:
            loop(config)
        except UserError as exc:
            return {ERROR_KEY: str(exc)}
        return None

    return train_loop_per_worker


def raise_returned_error(result: Any) -> None:
    """Raise the :class:`UserError` that a :func:`guarded` loop returned into ``result``, if any."""
    returned = getattr(result, "return_value", None)
    if isinstance(returned, dict) and returned.get(ERROR_KEY):
        message = str(returned[ERROR_KEY])
        raise (NonFiniteLossError if message.startswith("non-finite") else TrainingError)(message)


def check_finite(loss: Any, where: str) -> None:
    """Raise :class:`NonFiniteLossError` naming ``where`` (epoch, batch, frames) if ``loss`` is NaN/inf."""
    value = float(loss)
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"non-finite loss ({value}) at {where}; lower the learning rate or check the data"
        )


class Budget:
    """A wall-clock budget in seconds (None: unlimited); ``spent`` counts from construction."""

    def __init__(self, seconds: float | None, already: float = 0.0) -> None:
        self.seconds = seconds
        self.start = time.monotonic() - already

    @property
    def spent(self) -> float:
        return time.monotonic() - self.start

    def expired(self) -> bool:
        return self.seconds is not None and self.spent >= self.seconds


def is_rank_zero() -> bool:
    """True on the first worker (the one that writes checkpoints and files)."""
    import ray.train

    return ray.train.get_context().get_world_rank() == 0


def report_epoch(metrics: dict[str, Any], state: dict[str, Any] | None = None) -> None:
    """Report one epoch's metrics from every worker; rank 0 attaches ``state`` as a checkpoint.

    The state is saved with ``torch.save`` into a temporary directory that Ray then persists, so
    an interrupted save never becomes the checkpoint a run resumes from. It must hold only tensors
    and plain values (dicts, lists, numbers, strings): it is read back with ``weights_only=True``.
    """
    import ray.train
    import torch

    if state is None or not is_rank_zero():
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(state, os.path.join(tmp, STATE_FILE))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


class TrainSession:
    """Where a training loop runs: a Ray Train worker (the default) or a Ray Tune trial.

    A loop asks it for its ``rank``/``world_size`` and ``device()``, the state to resume from
    (:meth:`latest_state`), and hands it each epoch's metrics and state (:meth:`report`). This class
    is the Ray Train worker; :class:`TuneSession` runs the same loop inside a Tune function trainable.
    """

    @property
    def rank(self) -> int:
        import ray.train

        return int(ray.train.get_context().get_world_rank())

    @property
    def world_size(self) -> int:
        import ray.train

        return int(ray.train.get_context().get_world_size())

    def device(self) -> Any:
        from ray.train.torch import get_device

        return get_device()

    def latest_state(self) -> dict[str, Any] | None:
        return latest_state()

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        report_epoch(metrics, state)


class TuneSession(TrainSession):
    """A loop running in a Ray Tune function trainable's own actor: one process, world size 1.

    Metrics go to ``ray.tune.report`` (so a scheduler such as ASHA sees every epoch) with the state
    as a Tune checkpoint, and a restored trial resumes from its last one. ``last_state`` keeps the
    state of the latest report for the trial function (e.g. to score the best model afterwards).
    """

    def __init__(self) -> None:
        self.last_state: dict[str, Any] | None = None

    @property
    def rank(self) -> int:
        return 0

    @property
    def world_size(self) -> int:
        return 1

    def device(self) -> Any:
        import ray
        import torch

        return torch.device("cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu")

    def latest_state(self) -> dict[str, Any] | None:
        import ray.tune

        ckpt = ray.tune.get_checkpoint()
        return None if ckpt is None else _load_state(ckpt)

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        import ray.tune
        import torch

        self.last_state = state
        if state is None:
            ray.tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(state, os.path.join(tmp, STATE_FILE))
            ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(tmp))


def latest_state() -> dict[str, Any] | None:
    """The state of the last reported checkpoint of this run (after a restart), else None."""
    import ray.train

    ckpt = ray.train.get_checkpoint()
    return None if ckpt is None else _load_state(ckpt)


def _load_state(checkpoint: Any) -> dict[str, Any]:
    """A checkpoint's state, read with ``weights_only=True`` (tensors and plain values only)."""
    from crystalspace.registry import load_tensors

    with checkpoint.as_directory() as d:
        state: dict[str, Any] = load_tensors(os.path.join(d, STATE_FILE))
    return state


def plot_learning_curves(
    history: Sequence[dict[str, Any]], path: str | os.PathLike[str], keys: Sequence[str], title: str = ""
) -> Path:
    """Plot metric ``keys`` against ``epoch`` (log scale, one panel each) and save a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in keys if any(k in r for r in history)]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(4 * max(len(keys), 1), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        pts = [(r.get("epoch", i), r[key]) for i, r in enumerate(history) if r.get(key) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        if pts and min(p[1] for p in pts) > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write a matplotlib figure as PNG atomically (no half-written file is ever visible) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return path
