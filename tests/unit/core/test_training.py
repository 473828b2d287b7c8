"""Training helpers of the one training runner: the time budget, the NaN guard, learning curves (the
runner itself on Ray: tests/integration/test_training_runner.py)."""

from __future__ import annotations

import pytest
import torch


def test_training_helpers(tmp_path) -> None:
    from crystalspace.training import Budget, NonFiniteLossError, check_finite, plot_learning_curves

    assert Budget(None).expired() is False
    assert Budget(10.0, already=11.0).expired() is True
    assert Budget(10.0, already=0.0).expired() is False
    check_finite(torch.tensor(1.5), "epoch 0 batch 0")
    with pytest.raises(NonFiniteLossError, match="at epoch 3 batch 7"):
        check_finite(torch.tensor(float("inf")), "epoch 3 batch 7")
    history = [{"epoch": e, "val_force_mae": 1.0 / (e + 1), "val_force_r2": 0.5 + 0.1 * e} for e in range(4)]
    png = plot_learning_curves(history, tmp_path / "curve.png", ["val_force_mae", "val_force_r2", "absent"])
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]
