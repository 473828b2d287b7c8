"""Ray Tune sweeps of the force-field zoo: architecture × hyper-parameters, ASHA, resumable.

A sweep is a YAML file (``pipelines/configs/mlff_tune_*.yaml``, :class:`SweepSpec`): a base
:class:`~crystalspace.config.MLFFConfig` (file + overrides) and a search ``space`` over its fields
(``model``, ``cutoff``, ``hidden``, ``layers``, ``lr``, ``energy_weight``, ``force_weight``, ...).
Every trial trains one model with the zoo's own loop (:func:`crystalspace.mlff.train.train_loop`)
and reports the validation force MAE (eV/Å) after each epoch, so the ASHA scheduler stops the
worse half of the trials at each rung. With ``stability.enabled`` a trial that finishes training
also runs a short NVT MD of its best model on the training material and adds the RDF MAE against the
reference frames (:mod:`crystalspace.md.analysis`) to its objective:
``objective = best val force MAE + stability.weight × RDF MAE``.

Why the trial runs the loop in its own actor rather than a ``TorchTrainer`` inside the trial (the
Train V2 pattern of the Ray docs): when a scheduler stops such a trial, Ray 2.60 kills the trial
actor but not the Train run's placement group, so its CPUs/GPUs stay reserved and the next trials
wait for ever (ray-project/ray#54305; reproduced here on 2.60.0 with ASHA on 2 CPUs: the fourth
trial never started). A nested run also costs ~30-40 s of Train start-up per trial on 2 cores. The
trial therefore runs the same loop through :class:`~crystalspace.training.TuneSession`: Tune owns
the trial's resources (freed when ASHA stops it), checkpoints every epoch, and a trial interrupted
mid-way resumes from its last epoch. Multi-GPU data-parallel runs stay with ``mlff train``.

The sweep is resumable: ``Tuner.restore`` continues unfinished trials and never re-runs finished
ones (``crystalspace mlff tune --resume``; ``--stop-after N`` ends a run gracefully after N trials,
e.g. to fit a time-limited machine). Results: ``tune_results.csv``/``.parquet`` (one row per trial,
ranked), ``tune_history.parquet`` (one row per trial × epoch), ``tune_sweep.png`` (validation force
MAE per epoch coloured by architecture, and the ranked objectives) and ``best_config.yaml`` (an
``mlff train`` config of the winner).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray.tune import Callback

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


# ------------------------------------------------------------------------------------- the trials
@dataclass
class StabilityInputs:
    """What a trial's MD stability score needs (computed once on the driver)."""

    spec: StabilitySpec
    material: str
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    reference: Any  # crystalspace.md.analysis.RDF of the reference frames


def trial(
    config: dict[str, Any],
    base: dict[str, Any],
    train_rows: list[dict[str, Any]],
    val_rows: list[dict[str, Any]],
    stability: StabilityInputs | None = None,
) -> None:
    """One Tune trial: train ``base`` + ``config`` with the zoo's loop, one report per epoch.

    A trial whose input turns out bad (a NaN loss, say) ends with one report of ``failed`` and a NaN
    metric instead of an error, so the sweep goes on and the table says why.
    """
    import ray.tune

    from crystalspace.mlff.train import train_loop
    from crystalspace.training import TuneSession

    cfg = {**base, **config}
    session = TuneSession()
    try:
        train_loop({"cfg": cfg, "train_rows": train_rows, "val_rows": val_rows}, session)
    except UserError as exc:
        ray.tune.report({METRIC: math.nan, "failed": str(exc)})
        return
    if stability is None or session.last_state is None:
        return
    state = session.last_state
    score = stability_score(MLFFConfig(**cfg), state["best_state"], stability, session.device())
    best = min(r[METRIC] for r in state["history"])
    ray.tune.report({METRIC: best, "epoch": state["epoch"], **score,
                     "objective": best + stability.spec.weight * score["rdf_mae"]})  # fmt: skip


def stability_score(
    cfg: MLFFConfig, model_state: dict[str, Any], inputs: StabilityInputs, device: Any = "cpu"
) -> dict[str, Any]:
    """Short NVT MD (Nosé–Hoover) of a model from a reference frame; RDF MAE against the reference.

    Returns ``rdf_mae`` (1/Å, the study's threshold 0.02 = stable), ``md_verdict``, ``md_failure``
    (lattice mismatch / atom fusion / why replicas stopped) and ``md_steps`` reached.
    """
    import tempfile

    from crystalspace.md import analysis as an
    from crystalspace.md.engine import MDProtocol, ReplicaBatch, ReplicaSpec, replica_seed
    from crystalspace.md.forces import MD_SKIN, potential_provider
    from crystalspace.mlff.models import build_model
    from crystalspace.mlff.potential import Potential

    s = inputs.spec
    model = build_model(cfg.model, **cfg.model_hparams())
    model.load_state_dict(model_state)
    pot = Potential(model, cfg.max_neighbors, skin=MD_SKIN).to(device).eval()
    protocol = MDProtocol(t0_K=s.temperature_K, ramp_ps=0.0, production_ps=s.steps * 2.0 / 1000,
                          record_every=s.record_every, checkpoint_every=10**9)  # fmt: skip
    specs = [ReplicaSpec(inputs.material, s.temperature_K, k, replica_seed(0, s.temperature_K, k), k)
             for k in range(s.replicas)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        batch = ReplicaBatch(potential_provider(pot), inputs.numbers, inputs.cell, inputs.positions,
                             specs, protocol, tmp, "stability", device=str(device))  # fmt: skip
        batch.start()
        batch.run()
        batch.checkpoint()
        frames = an.load_trajectories(tmp)
    summary = batch.summary()
    frames = frames[frames.step >= s.discard_fraction * protocol.n_steps]
    reasons = [r["reason"] for r in summary if r["reason"]]
    if frames.empty:  # every replica stopped before the RDF window: the worst score
        return {"rdf_mae": 1.0, "md_verdict": "unstable", "md_failure": "; ".join(reasons), "md_steps": 0}
    model_rdf = an.frames_rdf(frames.sort_values("step"), float(inputs.reference.r[-1] + 0.025),
                              float(inputs.reference.r[1] - inputs.reference.r[0]))  # fmt: skip
    verdict, mode, mae = an.stability_verdict(model_rdf, inputs.reference, stopped_reasons=reasons)
    if reasons:
        mode = f"{mode} ({len(reasons)} of {len(summary)} replicas stopped: {reasons[0]})"
    return {"rdf_mae": mae, "md_verdict": verdict, "md_failure": mode,
            "md_steps": int(max(r["stopped_at_step"] or r["last_step"] for r in summary))}  # fmt: skip


def stability_inputs(spec: StabilitySpec, cfg: MLFFConfig) -> StabilityInputs:
    """The starting frame and the reference RDF at ``spec.temperature_K`` from the training data."""
    from crystalspace.md import analysis as an
    from crystalspace.mlff.data import material_path

    material = spec.material or cfg.train_material
    frames = an.load_trajectories(material_path(cfg.data, material))
    frames = frames[frames.temperature_K == round(spec.temperature_K)]
    if frames.empty:
        raise ConfigError(
            f"stability: no {material} reference frames at {spec.temperature_K:g} K in {cfg.data}"
        )
    frames = frames.sort_values(["run", "step"])
    first = frames.iloc[0]
    n = len(first.numbers)
    return StabilityInputs(
        spec=spec,
        material=material,
        numbers=np.asarray(first.numbers, dtype=np.int64),
        positions=np.asarray(first.positions, dtype=np.float64).reshape(n, 3),
        cell=np.asarray(first.cell, dtype=np.float64).reshape(3, 3),
        reference=an.frames_rdf(frames, max_frames=spec.rdf_frames),
    )


# --------------------------------------------------------------------------------- the sweep itself
@dataclass
class _Invocation:
    """This process's view of a running sweep (read by :class:`SweepMonitor`, never serialised)."""

    total: int
    stop_after: int | None = None
    finished: int = 0
    interrupted: bool = False


_RUNNING: dict[str, _Invocation] = {}


class SweepMonitor(Callback):
    """Prints a line per finished trial; ends the run gracefully after ``stop_after`` trials.

    Tune serialises its callbacks with the experiment and brings them back on restore, so all
    per-invocation state lives in the module's ``_RUNNING`` (keyed by the experiment name), not here
    (and the class is importable, so the restored callback sees this process's ``_RUNNING``).
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finished(trial, "done")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finished(trial, "error")

    def _finished(self, trial: Any, how: str) -> None:
        run = _RUNNING.get(self.name)
        if run is None:
            return
        run.finished += 1
        last = trial.last_result or {}
        mae = last.get(METRIC, math.nan)
        params = ", ".join(f"{k}={_short(trial.config[k])}" for k in sorted(trial.config))
        print(f"trial {trial.trial_id} {how} ({run.finished} this run, {run.total} in the sweep): "
              f"{params}; epochs {int(last.get('epoch', -1)) + 1}, val force MAE {mae:.4g} eV/Å",
              file=sys.stderr, flush=True)  # fmt: skip
        if run.stop_after is not None and run.finished >= run.stop_after and not run.interrupted:
            run.interrupted = True
            _interrupt()


def _interrupt() -> None:
    """Ask Tune to stop like Ctrl+C does: save the experiment state, leave unfinished trials to resume."""
    handler = signal.getsignal(signal.SIGUSR1)
    if threading.current_thread() is not threading.main_thread() or handler in (
        signal.SIG_DFL,
        signal.SIG_IGN,
        None,
    ):
        log.warning("cannot stop the sweep early outside the main thread; it runs to the end")
        return
    signal.raise_signal(signal.SIGUSR1)


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


@dataclass
class SweepResult:
    """A sweep's outcome: the ranked table, per-epoch history, files written, and whether it is complete."""

    table: pd.DataFrame
    history: pd.DataFrame
    files: dict[str, Path]
    complete: bool
    experiment: Path
    best: dict[str, Any] = field(default_factory=dict)


def run_sweep(spec: SweepSpec, resume: bool = False, stop_after: int | None = None) -> SweepResult:
    """Run (or resume) the sweep, then write the table, history, figure and the best config.

    ``stop_after`` ends this invocation gracefully once that many trials have finished (the rest
    stays for ``resume``). Raises :class:`ConfigError` for a fresh run whose experiment directory
    exists already, and for a resume with nothing to resume.
    """
    from ray import tune

    from crystalspace.runtime import init_ray

    exp = spec.experiment_dir
    if resume and not tune.Tuner.can_restore(str(exp)):
        raise ConfigError(f"nothing to resume at {exp} (run the sweep first, or check --out/--name)")
    if not resume and exp.exists():
        raise ConfigError(f"{exp} exists: continue it with --resume, or choose another --name/--out")
    cfg = spec.base_config()
    trainable = _trainable(spec, cfg)
    # one tiny checkpoint per epoch forces experiment snapshots; that is intended, not a bottleneck
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    init_ray()
    _RUNNING[spec.name] = _Invocation(total=count_trials(spec), stop_after=stop_after)
    try:
        with _quiet_analysis():
            if resume:
                tuner = tune.Tuner.restore(str(exp), trainable, resume_unfinished=True, resume_errored=True)
            else:
                tuner = _new_tuner(spec, cfg, trainable)
                exp.mkdir(parents=True, exist_ok=True)
                (exp / SPEC_FILE).write_text(spec.model_dump_json(indent=1))
            tuner.fit()
    finally:
        _RUNNING.pop(spec.name, None)
    return collect(spec)


def _new_tuner(spec: SweepSpec, cfg: MLFFConfig, trainable: Any) -> Any:
    """The Tuner: ASHA on the per-epoch validation force MAE, seeded sampling, per-epoch checkpoints."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    # stop_last_trials=False: a trial that reaches the last epoch ends by itself, so the optional
    # MD score can still be reported after it (ASHA would stop it at max_t otherwise)
    asha = ASHAScheduler(time_attr="training_iteration", metric=METRIC, mode="min", max_t=cfg.epochs,
                         grace_period=min(spec.asha.grace_period, cfg.epochs),
                         reduction_factor=spec.asha.reduction_factor, stop_last_trials=False)  # fmt: skip
    return tune.Tuner(
        trainable,
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(
            num_samples=spec.num_samples,
            max_concurrent_trials=spec.max_concurrent,
            scheduler=asha,
            search_alg=BasicVariantGenerator(random_state=spec.seed),
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=str(spec.experiment_dir.parent),
            callbacks=[SweepMonitor(spec.name)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            verbose=1,
        ),
    )


@contextmanager
def _quiet_analysis() -> Iterator[None]:
    """Trials that have not started have no result files; Tune warns per trial. Not worth a warning."""
    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        yield
    finally:
        quiet.setLevel(level)


def saved_spec(out: str, name: str, storage: str | None = None) -> SweepSpec:
    """The spec a sweep was started with (what ``--resume`` continues)."""
    path = SweepSpec(space={}, out=out, name=name, storage=storage).experiment_dir / SPEC_FILE
    if not path.exists():
        raise ConfigError(f"nothing to resume at {path.parent} (run the sweep first, or check --out/--name)")
    try:
        data = json.loads(path.read_text())
        return SweepSpec(**data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ConfigError(f"cannot resume from {path}: {str(exc).splitlines()[0]}") from None


def _trainable(spec: SweepSpec, cfg: MLFFConfig) -> Any:
    """The trial function with the data split of ``cfg`` (as ``mlff train`` makes it) bound to it."""
    from ray import tune

    from crystalspace.mlff.data import labelled_rows, load_material, split_frames

    table = load_material(cfg.data, cfg.train_material, cfg.phase)
    split = split_frames(table, cfg.train_per_temperature, cfg.val_per_temperature, cfg.test_frames, cfg.seed)
    train_rows = labelled_rows(table, split.train, f"{cfg.train_material} training frames")
    val_rows = labelled_rows(table, split.val, f"{cfg.train_material} validation frames")
    stability = stability_inputs(spec.stability, cfg) if spec.stability.enabled else None
    fn = tune.with_parameters(trial, base=cfg.model_dump(), train_rows=train_rows, val_rows=val_rows,
                              stability=stability)  # fmt: skip
    resources = {"cpu": spec.cpus_per_trial, **({"gpu": spec.gpus_per_trial} if spec.gpus_per_trial else {})}
    return tune.with_resources(fn, resources)


# ------------------------------------------------------------------------------- results and figure
def collect(spec: SweepSpec) -> SweepResult:
    """Read the experiment back and write ``tune_results.*``, ``tune_history.parquet``,
    ``tune_sweep.png`` and ``best_config.yaml`` under ``spec.out``."""
    from ray.tune import ExperimentAnalysis

    cfg = spec.base_config()
    with _quiet_analysis():
        analysis = ExperimentAnalysis(str(spec.experiment_dir))
    keys = sorted(spec.space)
    rows, histories = [], []
    for t in analysis.trials:
        df = analysis.trial_dataframes.get(t.trial_id, pd.DataFrame())
        rows.append(_trial_row(t, df, keys, cfg.epochs, spec))
        if not df.empty and "epoch" in df:
            epochs = df[df["epoch"].notna() & df.get("failed", pd.Series(index=df.index)).isna()]
            epochs = epochs[[c for c in ("epoch", METRIC, "val_energy_mae", "val_force_r2", "val_loss",
                                         "train_loss", "lr", "epoch_s") if c in epochs]]  # fmt: skip
            histories.append(epochs.assign(trial=t.trial_id, model=t.config.get("model", cfg.model)))
    table = rank_trials(pd.DataFrame(rows), spec.stability.enabled)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": out / "tune_results.csv",
        "parquet": out / "tune_results.parquet",
        "history": out / "tune_history.parquet",
        "figure": out / "tune_sweep.png",
    }
    table.to_csv(files["csv"], index=False)
    table.to_parquet(files["parquet"], index=False)
    history.to_parquet(files["history"], index=False)
    plot_sweep(table, history, files["figure"], title=f"{spec.name}: validation force MAE")
    complete = bool(len(table)) and not table.status.isin(["pending", "unfinished"]).any()
    best: dict[str, Any] = {}
    ranked = table[table["rank"].notna()]
    if len(ranked):
        winner = ranked.iloc[0]
        best = {**cfg.model_dump(), **{k: _plain(winner[k]) for k in keys}}
        files["best_config"] = out / "best_config.yaml"
        files["best_config"].write_text(
            f"# best trial {winner.trial} of sweep {spec.name}: objective {winner.objective:.4g}\n"
            + yaml.safe_dump(best, sort_keys=False)
        )
    return SweepResult(table, history, files, complete, spec.experiment_dir, best)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _trial_row(t: Any, df: pd.DataFrame, keys: list[str], epochs: int, spec: SweepSpec) -> dict[str, Any]:
    """One table row: parameters, status, epochs run, best validation metrics, MD score."""
    row: dict[str, Any] = {"trial": t.trial_id, **{k: t.config.get(k) for k in keys}}
    failed = df["failed"].dropna() if "failed" in df else pd.Series(dtype=object)
    ep = df[df[METRIC].notna()] if METRIC in df else df
    ep = ep[ep["epoch"].notna()] if "epoch" in ep else ep.iloc[0:0]
    if "md_verdict" in ep:
        ep = ep[ep["md_verdict"].isna()]
    run = int(ep["epoch"].max()) + 1 if len(ep) else 0
    if t.status == "ERROR":
        status = "error"
    elif len(failed):
        status = "failed"
    elif t.status in ("PENDING",) and not len(df):
        status = "pending"
    elif t.status != "TERMINATED":
        status = "unfinished"
    elif run >= epochs:
        status = "completed"
    elif "done" in df and bool(df["done"].iloc[-1]):  # Tune marks the result it stopped a trial on
        status = "stopped early"
    else:  # the loop ended by itself before the last epoch: the time budget ran out
        status = "budget"
    row.update({"status": status, "epochs": run, "reason": failed.iloc[0] if len(failed) else ""})
    if len(ep):
        best = ep.loc[ep[METRIC].idxmin()]
        row.update({"best_epoch": int(best["epoch"]), METRIC: float(best[METRIC]),
                    "val_energy_mae": float(best.get("val_energy_mae", math.nan)),
                    "val_force_r2": float(best.get("val_force_r2", math.nan)),
                    "final_val_force_mae": float(ep.sort_values("epoch")[METRIC].iloc[-1]),
                    "train_s": float(ep.get("epoch_s", pd.Series([0.0])).sum())})  # fmt: skip
    else:
        row.update({METRIC: math.nan})
    if spec.stability.enabled:
        md = df[df["md_verdict"].notna()] if "md_verdict" in df else df.iloc[0:0]
        last = md.iloc[-1] if len(md) else {}
        row.update({"rdf_mae": float(last.get("rdf_mae", math.nan)) if len(md) else math.nan,
                    "md_verdict": last.get("md_verdict", "") if len(md) else "",
                    "md_failure": last.get("md_failure", "") if len(md) else ""})  # fmt: skip
        row["objective"] = row[METRIC] + spec.stability.weight * row["rdf_mae"]
    else:
        row["objective"] = row[METRIC]
    row["path"] = str(t.path)
    return row


def rank_trials(table: pd.DataFrame, stability: bool = False) -> pd.DataFrame:
    """Sort by objective and number the trials that have one (1 = best); the rest follow by MAE.

    Without the MD score the objective is the best validation force MAE; with it, only trials that
    finished training (and so got an MD score) are ranked.
    """
    if table.empty:
        return table.assign(rank=pd.Series(dtype=float))
    order = table.sort_values(["objective", METRIC], na_position="last").reset_index(drop=True)
    order["rank"] = np.where(order["objective"].notna(), np.arange(1, len(order) + 1), np.nan)
    return order


def plot_sweep(table: pd.DataFrame, history: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Left: validation force MAE per epoch of every trial, coloured by architecture (× = stopped by
    ASHA). Right: the trials ranked by objective. Saved atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from crystalspace.training import save_figure

    models = sorted({str(m) for m in table.get("model", pd.Series(["model"])).fillna("model")})
    colour = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    status = dict(zip(table.trial, table.status, strict=True)) if len(table) else {}
    for trial_id, g in history.groupby("trial") if len(history) else []:
        g = g.sort_values("epoch")
        c = colour.get(str(g["model"].iloc[0]), "grey")
        ax.plot(g["epoch"] + 1, g[METRIC], "-o", color=c, ms=3, lw=1, alpha=0.8)
        if status.get(trial_id) == "stopped early":
            ax.plot(g["epoch"].iloc[-1] + 1, g[METRIC].iloc[-1], "x", color=c, ms=8, mew=2)
    for m in models:
        ax.plot([], [], "-o", color=colour[m], label=m)
    ax.plot([], [], "x", color="k", label="stopped by ASHA")
    ax.set(xlabel="epoch", ylabel="validation force MAE (eV/Å)", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(history) and (history[METRIC] > 0).all():
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    shown = table[table["objective"].notna()] if len(table) else table
    labels = [f"#{int(r['rank']) if pd.notna(r['rank']) else '-'} {r.trial[-5:]} {r.get('model', '')}"
              for _, r in shown.iterrows()]  # fmt: skip
    bars = bx.barh(range(len(shown)), shown["objective"] if len(shown) else [],
                   color=[colour.get(str(m), "grey") for m in shown.get("model", [])])  # fmt: skip
    for bar, st in zip(bars, shown["status"] if len(shown) else [], strict=True):
        if st != "completed":
            bar.set_hatch("//")
    bx.set_yticks(range(len(shown)), labels, fontsize=7)
    bx.invert_yaxis()
    bx.set(
        xlabel="objective (best val force MAE, eV/Å [+ w·RDF MAE])",
        title="trials ranked (hatched: stopped early)",
    )
    bx.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return save_figure(fig, path)


def print_table(table: pd.DataFrame, keys: list[str]) -> None:
    """The ranked trials as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    cols = ["rank", "trial", *keys, "status", "epochs", METRIC, "val_energy_mae", "val_force_r2"]
    cols += [c for c in ("rdf_mae", "md_verdict", "objective") if c in table]
    out = Table(title="MLFF sweep (val force MAE eV/Å, energy MAE eV/atom)")
    for c in cols:
        out.add_column(c, justify="right" if c not in ("trial", "status", "model", "md_verdict") else "left")
    for _, r in table.iterrows():
        out.add_row(*[_cell(r.get(c)) for c in cols])
    Console(width=max(120, 14 * len(cols))).print(out)


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if not v.is_integer() else f"{int(v)}"
    return str(v)
