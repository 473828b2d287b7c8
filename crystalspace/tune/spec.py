"""A sweep's specification: the base MLFF config, the search space (checked value by value), ASHA and the stability score; loaded from YAML."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crystalspace.config import ConfigError, parse_value, path_field, read_config_file, resolve_paths
from crystalspace.errors import UserError
from crystalspace.mlff.config import MLFFConfig, make_mlff_config

log = logging.getLogger(__name__)


METRIC = "val_force_mae"
SPEC_FILE = "sweep_spec.json"
RANGE_KINDS = ("uniform", "loguniform", "randint")
LIST_KINDS = ("grid", "choice")


class AshaSpec(BaseModel):
    """ASHA early stopping on the validation force MAE (one time unit = one epoch)."""

    model_config = ConfigDict(extra="forbid")

    grace_period: int = Field(default=1, ge=1, description="epochs before a trial can be stopped")
    reduction_factor: float = Field(default=2.0, gt=1, description="keep 1/rf of the trials per rung")


class StabilitySpec(BaseModel):
    """The optional short-MD stability score of a trial's best model."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    material: str | None = Field(default=None, description="material (default: the training material)")
    temperature_K: float = Field(default=1000.0, gt=0)  # noqa: N815 (the unit, as in crystalspace.md)
    steps: int = Field(default=300, ge=10, description="NVT steps (2 fs)")
    replicas: int = Field(default=1, ge=1)
    discard_fraction: float = Field(default=0.25, ge=0, lt=1, description="first part left out of the RDF")
    record_every: int = Field(default=5, ge=1)
    weight: float = Field(default=10.0, ge=0, description="objective = force MAE + weight × RDF MAE")
    rdf_frames: int = Field(default=50, ge=1, description="reference frames in the reference RDF")


class SweepSpec(BaseModel):
    """A Ray Tune sweep over :class:`MLFFConfig` fields (the YAML file of ``mlff tune``)."""

    model_config = ConfigDict(extra="forbid")

    base: str | None = path_field(default=None, description="MLFF training YAML every trial starts from")
    overrides: dict[str, Any] = Field(default_factory=dict, description="MLFFConfig fields set for all")
    space: dict[str, Any] = Field(description="field -> list/grid/choice/uniform/loguniform/randint/constant")
    num_samples: int = Field(default=1, ge=1, description="samples of the space (grids repeat per sample)")
    max_concurrent: int = Field(default=2, ge=1)
    cpus_per_trial: float = Field(default=1.0, gt=0)
    gpus_per_trial: float = Field(default=0.0, ge=0, description="fractions share a GPU (packing only)")
    asha: AshaSpec = Field(default_factory=AshaSpec)
    stability: StabilitySpec = Field(default_factory=StabilitySpec)
    max_failures: int = Field(default=1, ge=0, description="restarts of a crashed trial from its checkpoint")
    seed: int = 0
    out: str = path_field(default="runs/mlff_tune", description="tables, figure, best config")
    name: str = Field(default="mlff_tune", description="experiment name (what --resume continues)")
    storage: str | None = path_field(default=None, description="Tune experiments (default <out>/ray)")

    def base_config(self) -> MLFFConfig:
        """The MLFF config shared by all trials (GPU use follows ``gpus_per_trial``)."""
        extra = {"use_gpu": self.gpus_per_trial > 0, "num_workers": 1}
        return make_mlff_config(Path(self.base) if self.base else None, {**self.overrides, **extra})

    @property
    def experiment_dir(self) -> Path:
        return Path(self.storage or Path(self.out) / "ray").resolve() / self.name


def load_spec(
    file: Path | None,
    overrides: dict[str, Any] | None = None,
    *,
    out: str | None = None,
    name: str | None = None,
) -> SweepSpec:
    """A :class:`SweepSpec` from YAML, with MLFF ``overrides`` (``key=value`` strings allowed) and
    ``out``/``name`` on top; every value of the space is checked."""
    data = read_config_file(file, SweepSpec)
    if file is not None and isinstance(data.get("overrides"), dict):  # MLFF paths: relative to this file
        data["overrides"] = resolve_paths(data["overrides"], MLFFConfig, Path(file).resolve().parent)
    data.setdefault("overrides", {})
    for key, value in (overrides or {}).items():
        data["overrides"][key] = parse_value(key, value) if isinstance(value, str) else value
    data.update({k: v for k, v in {"out": out, "name": name}.items() if v is not None})
    if "space" not in data:
        raise ConfigError("sweep config lacks 'space' (the parameters to sweep)")
    try:
        spec = SweepSpec(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None
    check_space(spec)
    return spec


# ------------------------------------------------------------------------------------ search space
def _parse(key: str, value: Any) -> tuple[str, Any]:
    """``(kind, arguments)`` of one space entry: a list is a grid, a scalar a constant."""
    if isinstance(value, list):
        return "grid", value
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in (*LIST_KINDS, *RANGE_KINDS):
            raise ConfigError(
                f"space.{key}: expected a list, a constant or one of "
                f"{', '.join((*LIST_KINDS, *RANGE_KINDS))} (got {value!r})"
            )
        kind, args = next(iter(value.items()))
        if kind in RANGE_KINDS and not (isinstance(args, list) and len(args) == 2):
            raise ConfigError(f"space.{key}.{kind}: expected [low, high], got {args!r}")
        if kind in LIST_KINDS and not (isinstance(args, list) and args):
            raise ConfigError(f"space.{key}.{kind}: expected a non-empty list, got {args!r}")
        return kind, args
    return "constant", value


def check_space(spec: SweepSpec) -> None:
    """Every key is an MLFFConfig field and every value (range ends included) makes a valid config."""
    from crystalspace.mlff.models import build_model

    base = spec.base_config().model_dump()
    fixed = {"data", "out", "registry", "use_gpu", "num_workers"}
    known = set(MLFFConfig.model_fields) - fixed
    for key, value in spec.space.items():
        if key not in known:
            raise ConfigError(
                f"space.{key}: not a sweepable MLFF parameter (known: {', '.join(sorted(known))})"
            )
        kind, args = _parse(key, value)
        values = args if kind in (*LIST_KINDS, "constant") else list(args)
        values = values if isinstance(values, list) else [values]
        if kind in RANGE_KINDS and not float(args[0]) < float(args[1]):
            raise ConfigError(f"space.{key}.{kind}: low must be below high, got {args}")
        if kind == "loguniform" and float(args[0]) <= 0:
            raise ConfigError(f"space.{key}.loguniform: bounds must be positive, got {args}")
        for v in values:
            try:
                cfg = MLFFConfig(**{**base, key: v})
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
                raise ConfigError(f"space.{key}: {v!r}: {msg}") from None
            if key == "model":
                try:
                    build_model(cfg.model, **cfg.model_hparams())
                except UserError as exc:  # an unknown architecture
                    raise ConfigError(f"space.model: {exc}") from None


def param_space(spec: SweepSpec) -> dict[str, Any]:
    """The Tune ``param_space`` of the spec (``randint`` bounds inclusive)."""
    from ray import tune

    make = {
        "grid": tune.grid_search,
        "choice": tune.choice,
        "uniform": lambda a: tune.uniform(float(a[0]), float(a[1])),
        "loguniform": lambda a: tune.loguniform(float(a[0]), float(a[1])),
        "randint": lambda a: tune.randint(int(a[0]), int(a[1]) + 1),
    }
    out: dict[str, Any] = {}
    for key, value in spec.space.items():
        kind, args = _parse(key, value)
        out[key] = args if kind == "constant" else make[kind](args)
    return out


def count_trials(spec: SweepSpec) -> int:
    """Trials the sweep runs: product of the grid lengths × ``num_samples``."""
    n = spec.num_samples
    for key, value in spec.space.items():
        kind, args = _parse(key, value)
        if kind == "grid":
            n *= len(args)
    return n
