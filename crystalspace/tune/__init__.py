"""Ray Tune sweeps of the force-field zoo: architecture × hyper-parameters, ASHA, resumable.

A sweep is a YAML file (``pipelines/configs/mlff_tune_*.yaml``, :class:`SweepSpec`): a base
:class:`~crystalspace.config.MLFFConfig` (file + overrides) and a search ``space`` over its fields
(``model``, ``cutoff``, ``hidden``, ``layers``, ``lr``, ``energy_weight``, ``force_weight``, ...).
Every trial trains one model with the zoo's own task (:class:`crystalspace.mlff.train.ForceFieldTask`)
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
trial therefore runs the same task through :func:`~crystalspace.training.run_task` and a
:class:`~crystalspace.training.TuneSession`: Tune owns the trial's resources (freed when ASHA
stops it), checkpoints every epoch, and a trial interrupted mid-way resumes from its last epoch. Multi-GPU data-parallel runs stay with ``mlff train``.

The sweep is resumable: ``Tuner.restore`` continues unfinished trials and never re-runs finished
ones (``crystalspace mlff tune --resume``; ``--stop-after N`` ends a run gracefully after N trials,
e.g. to fit a time-limited machine). Results: ``tune_results.csv``/``.parquet`` (one row per trial,
ranked), ``tune_history.parquet`` (one row per trial × epoch), ``tune_sweep.png`` (validation force
MAE per epoch coloured by architecture, and the ranked objectives) and ``best_config.yaml`` (an
``mlff train`` config of the winner).
"""

from crystalspace.tune.report import SweepResult, collect, plot_sweep, print_table, rank_trials
from crystalspace.tune.spec import SweepSpec, count_trials, load_spec, param_space
from crystalspace.tune.sweep import run_sweep, saved_spec

__all__ = [
    "SweepResult",
    "SweepSpec",
    "collect",
    "count_trials",
    "load_spec",
    "param_space",
    "plot_sweep",
    "print_table",
    "rank_trials",
    "run_sweep",
    "saved_spec",
]
