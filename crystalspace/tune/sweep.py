"""The sweep itself: a Ray Tune ``Tuner`` over the trials (ASHA, resumable with ``Tuner.restore``, graceful ``--stop-after``) and the monitor that shows progress."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from ray.tune import Callback

from crystalspace.config import ConfigError
from crystalspace.mlff.config import MLFFConfig
from crystalspace.tune.objective import stability_inputs, trial
from crystalspace.tune.report import SweepResult, collect, quiet_analysis
from crystalspace.tune.spec import METRIC, SPEC_FILE, SweepSpec, count_trials, param_space

log = logging.getLogger(__name__)


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
        with quiet_analysis():
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
