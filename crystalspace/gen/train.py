"""Generic Ray Train glue: run a per-worker loop on a ``TorchTrainer``, report metrics, hand a
state dict back to the driver through a rank-0 checkpoint."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fit(
    loop: Callable[[dict[str, Any]], None],
    config: dict[str, Any],
    name: str,
    storage_path: str | os.PathLike[str],
    num_workers: int = 1,
    use_gpu: bool = False,
) -> Any:
    """Run ``loop(config)`` on ``num_workers`` Ray Train workers; returns the ``Result``. A
    :class:`UserError` in the loop (a non-finite loss, say) ends the run once and is raised here."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from crystalspace.training import guarded, raise_returned_error

    trainer = TorchTrainer(
        guarded(loop),  # type: ignore[arg-type]
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=num_workers, use_gpu=use_gpu, resources_per_worker=None if use_gpu else {"CPU": 1}
        ),
        run_config=RunConfig(name=name, storage_path=str(Path(storage_path).resolve())),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    raise_returned_error(result)
    return result


def report(metrics: dict[str, Any], state: dict[str, Any] | None = None) -> None:
    """Report metrics from every worker; rank 0 attaches ``state`` (torch-saved; tensors and plain
    values only, as it is read back with ``weights_only=True``) as the checkpoint."""
    import ray.train
    import torch

    if state is None or ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / "state.pt")
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def checkpoint_state(result: Any) -> dict[str, Any]:
    """The state dict saved by :func:`report` in the run's last checkpoint (tensors and plain values)."""
    from crystalspace.registry import load_tensors

    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    with result.checkpoint.as_directory() as d:
        state: dict[str, Any] = load_tensors(Path(d) / "state.pt")
        return state


def worker_info() -> tuple[int, int, Any]:
    """(rank, world size, torch device) of the current Ray Train worker."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    return ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device()
