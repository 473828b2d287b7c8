"""The one training runner (``crystalspace.training``): a tiny task trained for 2 epochs through Ray
Train on one CPU worker gives the same model when its worker is killed mid-run or the run is
interrupted and started again (both resume from the last checkpoint), and a NaN loss ends the run
with one line, no checkpoint of it and no model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch


def _linear_task() -> Any:
    """A task fitting y = 3x + 0.5 by SGD on fresh, epoch-seeded points each epoch.

    ``config``: ``epochs``, ``lr`` and optionally ``die_at``: the epoch in which the worker process
    dies (``os._exit``, a few seconds in, once Ray Train has taken the last report) unless it
    resumed from a checkpoint. The class is made inside a function so that Ray ships it by value.
    """
    import os
    import time

    from crystalspace.training import Task, check_finite

    class Linear(Task):
        def __init__(self, config: dict[str, Any], session: Any) -> None:
            torch.manual_seed(0)
            self.config, self.epochs, self.resumed = config, config["epochs"], False
            self.model = torch.nn.Linear(1, 1)
            self.opt = torch.optim.SGD(self.model.parameters(), lr=config["lr"])

        def train_epoch(self, epoch: int) -> dict[str, Any]:
            if epoch == self.config.get("die_at") and not self.resumed:
                time.sleep(5)
                os._exit(1)  # the worker is killed: no report, no checkpoint of this epoch
            x = torch.rand(64, 1, generator=torch.Generator().manual_seed(epoch)) * 2 - 1
            for _ in range(20):
                loss = torch.nn.functional.mse_loss(self.model(x), 3 * x + 0.5)
                check_finite(loss.detach(), f"epoch {epoch}")
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
            return {"loss": loss.item()}

        def save_state(self) -> dict[str, Any]:
            return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict()}

        def load_state(self, state: dict[str, Any]) -> None:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.resumed = True

    return Linear


def _settings(tmp_path: Path, name: str, max_failures: int = 1) -> Any:
    from crystalspace.training import RunSettings

    return RunSettings(name=name, storage_path=str(tmp_path / "ray"), max_failures=max_failures)


def _checkpoints(run: Path) -> list[Path]:
    return [p for p in run.glob("checkpoint_*") if p.is_dir()]


def _weights(state: dict[str, Any]) -> list[torch.Tensor]:
    return [state["model"]["weight"], state["model"]["bias"]]


CONFIG = {"epochs": 2, "lr": 0.3}


def _reference() -> dict[str, Any]:
    """The task's final state trained without interruption, in this process (no Ray)."""
    from crystalspace.training import LocalSession, run_task

    local = LocalSession()
    run_task(_linear_task(), CONFIG, local)
    assert local.last_state is not None
    assert float(local.last_state["model"]["weight"]) == pytest.approx(3.0, abs=0.1)  # it learned
    return local.last_state


@pytest.mark.slow
def test_killed_worker_resumes_to_the_same_model(ray_session, tmp_path) -> None:
    from crystalspace.training import run_training

    reference = _reference()
    whole = run_training(_linear_task(), CONFIG, _settings(tmp_path, "whole"), epochs=2).state
    assert whole is not None
    assert whole["epoch"] == 1
    assert all(map(torch.equal, _weights(whole), _weights(reference)))  # Ray or not, the same loop
    # The worker dies in epoch 1: FailureConfig restarts it from epoch 0's checkpoint.
    killed = run_training(_linear_task(), {**CONFIG, "die_at": 1}, _settings(tmp_path, "killed"), epochs=2)
    assert killed.state is not None
    assert killed.state["epoch"] == 1
    assert all(map(torch.equal, _weights(killed.state), _weights(reference)))


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_model(ray_session, tmp_path) -> None:
    from crystalspace.training import run_training

    reference = _reference()
    # No restarts allowed: the run stops in epoch 1; started again under its name, it resumes.
    with pytest.raises(Exception):  # noqa: B017, PT011 (Ray's own failure type)
        run_training(_linear_task(), {**CONFIG, "die_at": 1}, _settings(tmp_path, "run", max_failures=0))
    assert len(_checkpoints(tmp_path / "ray" / "run")) == 1
    again = run_training(_linear_task(), CONFIG, _settings(tmp_path, "run"), epochs=2).state
    assert again is not None
    assert again["epoch"] == 1
    assert all(map(torch.equal, _weights(again), _weights(reference)))
    # Had it started over, epoch 0 would have been trained again and its checkpoint written again.
    assert len(_checkpoints(tmp_path / "ray" / "run")) == 2


@pytest.mark.slow
def test_nan_loss_is_one_line_and_no_model(ray_session, tmp_path) -> None:
    from crystalspace.registry import write_entry
    from crystalspace.training import NonFiniteLossError, run_training

    def train_and_save(lr: float) -> Path:  # what every domain's driver does
        outcome = run_training(_linear_task(), {**CONFIG, "lr": lr}, _settings(tmp_path, "nan"))
        assert outcome.state is not None
        return write_entry(tmp_path / "model", {"arch": "linear"}, outcome.state["model"], {}, "# linear\n")

    with pytest.raises(NonFiniteLossError) as exc:
        train_and_save(lr=1e30)
    assert str(exc.value).startswith("non-finite loss (")
    assert "at epoch 0" in str(exc.value)
    assert "\n" not in str(exc.value)
    assert not _checkpoints(tmp_path / "ray" / "nan")  # the run stopped once, unsaved
    assert not (tmp_path / "model").exists()
