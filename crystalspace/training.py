"""The one training runner: every model (force fields, the CSP distance network, the iMatGen
autoencoders and VAE) trains through :func:`run_training`, on 1 CPU worker or N GPUs, resumably.

A domain supplies a :class:`Task` (after fairchem v2's runners with ``save_state``/``load_state``):
built on each worker from the run's config, it trains one epoch at a time and says what its state
is. The runner owns everything else:

- the driver, :func:`run_training`: a Ray Train ``TorchTrainer`` with a ``ScalingConfig``, a
  ``RunConfig`` with an absolute storage path (the same run name resumes), a
  ``FailureConfig(max_failures)`` so a failed worker group restarts from the last checkpoint, a
  ``CheckpointConfig`` keeping the latest ones, and progress lines (one step per checkpoint);
- the worker loop, :func:`run_task`: resume from the latest checkpoint, then per epoch
  ``train_epoch`` and one report of its metrics with a checkpoint of ``save_state()`` (rank 0);
- the non-finite-loss guard: a task calls :func:`check_finite`; the :class:`NonFiniteLossError`
  (any :class:`UserError`) ends the run once, without retries or a checkpoint (:func:`guarded`),
  and :func:`run_training` raises it on the driver as one line, before any model is saved;
- where the loop runs (:class:`TrainSession`): a Ray Train worker, a Ray Tune trial
  (:class:`TuneSession`, see :mod:`crystalspace.tune`) or this process alone (:class:`LocalSession`).

Checkpoints hold only tensors and plain values (written by
:func:`crystalspace.registry.save_tensors`, read by :func:`crystalspace.registry.load_tensors`);
tasks keep what they export (e.g. the best model) inside their state, so the latest checkpoint is
enough to resume and to save the model (:mod:`crystalspace.registry`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crystalspace.errors import UserError
from crystalspace.storage import atomic_path

STATE_FILE = "state.pt"
ERROR_KEY = "error"


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN or infinite (the message names the batch)."""


class TrainingError(UserError, RuntimeError):
    """A training run that failed for a reason the user can act on."""


@dataclass
class RunSettings:
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
    """What a finished run left: the metrics of its kept checkpoints, the final state, its path."""

    history: list[dict[str, Any]]
    state: dict[str, Any] | None
    path: str


class Task(ABC):
    """One domain's training as the runner drives it: built as ``Task(config, session)`` on every
    worker, it trains ``epochs`` epochs one at a time.

    :meth:`save_state` is what a checkpoint holds (tensors and plain values: everything needed to
    resume and to save the model); :meth:`load_state` resumes from it (the runner adds ``epoch``,
    the last epoch it covers).
    """

    epochs: int

    @abstractmethod
    def __init__(self, config: dict[str, Any], session: TrainSession) -> None: ...

    @abstractmethod
    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """Train one epoch (checking the loss with :func:`check_finite`) and return its metrics."""

    @abstractmethod
    def save_state(self) -> dict[str, Any]:
        """The state to checkpoint after an epoch."""

    @abstractmethod
    def load_state(self, state: dict[str, Any]) -> None:
        """Resume from a checkpointed state."""

    def finished(self) -> bool:
        """True to stop before ``epochs`` (a spent time budget, say)."""
        return False


def run_task(make: type[Task], config: dict[str, Any], session: TrainSession | None = None) -> Task:
    """The worker loop of every training: build the task, resume it from the session's latest
    checkpoint, then train epoch by epoch, reporting each epoch's metrics and state; returns the task."""
    session = session or TrainSession()
    task = make(config, session)
    state = session.latest_state()
    start = 0
    if state is not None:
        task.load_state(state)
        start = int(state["epoch"]) + 1
    for epoch in range(start, task.epochs):
        metrics = task.train_epoch(epoch)
        session.report({"epoch": epoch, **metrics}, {**task.save_state(), "epoch": epoch})
        if task.finished():
            break
    return task


def run_training(
    make: type[Task], config: dict[str, Any], settings: RunSettings, epochs: int | None = None
) -> TrainOutcome:
    """Train ``make(config, session)`` on every worker through ``TorchTrainer`` and collect the outcome.

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
        guarded(functools.partial(run_task, make)),  # type: ignore[arg-type]
        train_loop_config=config,
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
    frame = result.metrics_dataframe  # metrics of the kept checkpoints only; tasks keep full history
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


def guarded(loop: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], dict[str, str] | None]:
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


@contextlib.contextmanager
def _state_dir(state: dict[str, Any]) -> Iterator[str]:
    """A temporary directory holding ``state`` as :data:`STATE_FILE`, for Ray to persist as a
    checkpoint (an interrupted save never becomes the checkpoint a run resumes from)."""
    from crystalspace.registry import save_tensors

    with tempfile.TemporaryDirectory() as tmp:
        save_tensors(state, os.path.join(tmp, STATE_FILE))
        yield tmp


def _load_state(checkpoint: Any) -> dict[str, Any]:
    """A checkpoint's state, read with ``weights_only=True`` (tensors and plain values only)."""
    from crystalspace.registry import load_tensors

    with checkpoint.as_directory() as d:
        state: dict[str, Any] = load_tensors(os.path.join(d, STATE_FILE))
    return state


class TrainSession:
    """Where a task runs: a Ray Train worker (this class), a Tune trial or this process alone.

    A task asks it for its ``rank``/``world_size`` and ``device()``; :func:`run_task` asks it for
    the state to resume from (:meth:`latest_state`) and hands it each epoch's metrics and state
    (:meth:`report`: every worker reports, rank 0 attaches the checkpoint).
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
        """The state of the last reported checkpoint of this run (after a restart), else None."""
        import ray.train

        ckpt = ray.train.get_checkpoint()
        return None if ckpt is None else _load_state(ckpt)

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        import ray.train

        if state is None or self.rank != 0:
            ray.train.report(metrics)
            return
        with _state_dir(state) as tmp:
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


class LocalSession(TrainSession):
    """This process alone (rank 0 of 1, on ``device``): nothing to resume, reports kept in
    ``last_state`` only; e.g. a task trained inside a Tune trial of a sweep."""

    def __init__(self, device: Any = "cpu") -> None:
        self._device = device
        self.last_state: dict[str, Any] | None = None

    @property
    def rank(self) -> int:
        return 0

    @property
    def world_size(self) -> int:
        return 1

    def device(self) -> Any:
        return self._device

    def latest_state(self) -> dict[str, Any] | None:
        return None

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        self.last_state = state


class TuneSession(LocalSession):
    """A task running in a Ray Tune function trainable's own actor: one process, world size 1.

    Metrics go to ``ray.tune.report`` (so a scheduler such as ASHA sees every epoch) with the state
    as a Tune checkpoint, and a restored trial resumes from its last one. ``last_state`` keeps the
    state of the latest report for the trial function (e.g. to score the best model afterwards).
    """

    def __init__(self) -> None:
        import ray
        import torch

        super().__init__(torch.device("cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"))

    def latest_state(self) -> dict[str, Any] | None:
        import ray.tune

        ckpt = ray.tune.get_checkpoint()
        return None if ckpt is None else _load_state(ckpt)

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        import ray.tune

        self.last_state = state
        if state is None:
            ray.tune.report(metrics)
            return
        with _state_dir(state) as tmp:
            ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(tmp))


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

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return Path(path)
