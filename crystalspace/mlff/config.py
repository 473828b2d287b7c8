"""Force-field training configuration: data split, model, optimiser, Ray Train scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crystalspace.config import make_config, path_field
from crystalspace.runtime import shared_data


class MLFFConfig(BaseModel):
    """Force-field training: data split, model, optimiser, Ray Train scaling (mlff pipeline)."""

    model_config = ConfigDict(extra="forbid")

    data: str = path_field(
        default_factory=lambda: shared_data("mlff_reference"), description="reference Parquet dir"
    )
    train_material: str = Field(default="LGPS", description="material the model is trained on")
    test_materials: tuple[str, ...] = Field(default=("LGPS", "Li3PS4", "Li4GeS4"))
    train_per_temperature: int = Field(default=6000, ge=1, description="training frames per temperature")
    val_per_temperature: int = Field(default=500, ge=1, description="validation frames per temperature")
    test_frames: int = Field(default=2000, ge=1, description="unseen test frames per material")
    phase: str | None = Field(default="production", description="MD phase used (None: all frames)")
    model: str = "schnet"
    cutoff: float = Field(default=6.0, gt=0, description="neighbour cutoff, Å")
    max_neighbors: int = Field(default=500, ge=1)
    hidden: int = Field(default=128, ge=1, description="embedding size")
    layers: int = Field(default=3, ge=1, description="interaction layers")
    hparams: dict[str, Any] = Field(default_factory=dict, description="extra model hyper-parameters")
    epochs: int = Field(default=100, ge=1)
    batch_size: int = Field(default=8, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    energy_weight: float = Field(default=1.0, ge=0, description="weight of the per-atom energy MSE")
    force_weight: float = Field(default=1000.0, ge=0, description="weight of the force MSE (study: 1:1000)")
    plateau_patience: int = Field(default=5, ge=1)
    plateau_factor: float = Field(default=0.5, gt=0, lt=1)
    ema_decay: float | None = Field(default=None, description="EMA of the weights (e.g. 0.999); None: off")
    time_budget_s: float | None = Field(default=None, description="wall-clock budget per run (study: 10 h)")
    num_workers: int = Field(default=1, ge=1)
    use_gpu: bool = False
    max_failures: int = Field(default=1, ge=0)
    seed: int = 0
    out: str = path_field(default="runs/mlff", description="run directory (checkpoints, figures)")
    registry: str = path_field(default="runs/registry", description="saved-model registry root")
    dataset_name: str = Field(default="lgps", description="dataset part of the registry name")

    @model_validator(mode="after")
    def _model_builds(self) -> MLFFConfig:
        from crystalspace.mlff.models import check_model

        try:
            check_model(self.model, self.model_hparams())
        except KeyError as exc:  # UnknownModelError: one line, raised as the ValueError pydantic reports
            raise ValueError(str(exc)) from None
        return self

    def model_hparams(self) -> dict[str, Any]:
        """Hyper-parameters passed to the model constructor."""
        return {"cutoff": self.cutoff, "hidden": self.hidden, "layers": self.layers, **self.hparams}


def make_mlff_config(file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> MLFFConfig:
    """An `MLFFConfig` from an optional YAML file plus overrides (``key=value`` text read as YAML)."""
    return make_config(MLFFConfig, file, overrides)
