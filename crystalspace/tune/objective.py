"""One trial: train with the zoo's loop and report the validation force MAE per epoch; with the stability score, a short NVT MD of the best model and its RDF MAE against the reference frames."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from crystalspace.config import ConfigError
from crystalspace.errors import UserError
from crystalspace.mlff.config import MLFFConfig
from crystalspace.tune.spec import METRIC, StabilitySpec

log = logging.getLogger(__name__)


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

    from crystalspace.mlff.train import ForceFieldTask
    from crystalspace.training import TuneSession, run_task

    cfg = {**base, **config}
    session = TuneSession()
    try:
        run_task(ForceFieldTask, {"cfg": cfg, "train_rows": train_rows, "val_rows": val_rows}, session)
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
    from crystalspace.md.replicas import MDProtocol, ReplicaBatch, ReplicaSpec, replica_seed
    from crystalspace.mlff.models import build_model
    from crystalspace.mlff.potential import Potential
    from crystalspace.potentials.mlff import MD_SKIN, potential_provider

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
