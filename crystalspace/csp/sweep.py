"""Ray Tune sweep of N bins x training-set size x family (the study's Table 5)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from crystalspace.csp.data import Entry, family_of
from crystalspace.csp.features import Standardiser, species_of
from crystalspace.csp.target import Bins, pair_mask
from crystalspace.csp.train import Arrays, TrainConfig, evaluate, fit

# AlphaCrystal-II Table 5 (test RMSE in A, overlap at 8 A); family rows give RMSE only.
STUDY_TABLE5: dict[tuple[str, int, int | None], tuple[float, float | None]] = {
    ("all", 5, 1000): (1.884, 0.905),
    ("all", 5, 10000): (1.227, 0.998),
    ("all", 10, 1000): (1.340, 0.998),
    ("all", 10, 10000): (1.098, 0.999),
    ("all", 20, 10000): (0.924, 0.999),
    ("cubic", 10, None): (0.739, None),
    ("binary", 10, None): (1.311, None),
    ("ternary", 10, None): (1.278, None),
}


def trial(
    params: dict[str, Any], train: list[Entry], test: list[Entry], base: TrainConfig, device: str = "cpu"
) -> dict[str, float]:
    """Train one (family, n_bins, train size) configuration and return its test metrics."""
    fam, n_bins, size = params["family"], int(params["n_bins"]), params["train_size"]
    tr = [e for e in train if family_of(e, fam)]
    te = [e for e in test if family_of(e, fam)]
    if size:
        tr = list(np.random.default_rng(base.seed).permutation(np.array(tr, dtype=object))[:size])
    std = Standardiser.fit([z for e in tr for z in species_of(e.structure)])
    a_tr, a_te = Arrays.of(tr, std, base.max_atoms), Arrays.of(te, std, base.max_atoms)
    bins = Bins.fit(a_tr.d, pair_mask(a_tr.mask), n_bins) if n_bins > 0 else None
    cfg = replace(base, n_bins=n_bins)
    model = fit(a_tr, cfg, bins, device=device)
    return {"n_train": float(len(tr)), "n_test": float(len(te)), **evaluate(model, a_te, bins)}


def sweep(
    train: list[Entry],
    test: list[Entry],
    grid: list[dict[str, Any]],
    base: TrainConfig,
    storage: Path,
    use_gpu: bool = False,
    concurrent: int = 2,
) -> list[dict[str, Any]]:
    """Run every grid point as a Ray Tune trial; rows = params + metrics."""
    import torch
    from ray import tune

    def trainable(point: dict[str, Any], train: list[Entry], test: list[Entry]) -> None:
        params = grid[point["point"]]
        if not use_gpu:
            torch.set_num_threads(1)
        device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        tune.report(trial(params, train, test, base, device))

    res: dict[str, float] = {"cpu": 1.0, "gpu": 1.0 / concurrent} if use_gpu else {"cpu": 1.0}
    # map the integer grid index to its parameters inside the trainable
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, train=train, test=test), res),
        param_space={"point": tune.grid_search(list(range(len(grid))))},
        tune_config=tune.TuneConfig(metric="rmse", mode="min", max_concurrent_trials=concurrent),
        run_config=tune.RunConfig(storage_path=str(storage.resolve()), name="csp_sweep"),
    )
    results = tuner.fit()
    rows = []
    for i in range(len(results)):
        r = results[i]
        if r.error:
            raise RuntimeError(f"sweep trial failed: {r.error}")
        conf, met = r.config or {}, r.metrics or {}
        rows.append(
            {**grid[conf["point"]], **{k: met[k] for k in ("n_train", "n_test", "mse", "rmse", "overlap")}}
        )
    return sorted(rows, key=lambda x: (x["family"], x["n_bins"], x["train_size"] or 0))
