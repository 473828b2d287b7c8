"""Force fields in five minutes: train SchNet on LGPS frames with Ray Train, test transfer, run it in ASE.

Uses the CI-sized subset of the CHGNet reference MD shipped with the tests (300 frames per
material); point DATA at ``shared/data/mlff_reference`` for the full set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from crystalspace.atoms.io import row_to_atoms
from crystalspace.mlff.config import make_mlff_config
from crystalspace.mlff.data import labelled_rows, load_material
from crystalspace.mlff.evaluate import evaluate_models, format_table
from crystalspace.mlff.potential import load_potential
from crystalspace.mlff.train import train_model
from crystalspace.potentials import ProviderCalculator
from crystalspace.runtime import init_ray

DATA = os.environ.get(
    "MLFF_DATA", str(Path(__file__).resolve().parents[1] / "tests" / "data" / "mlff_subset")
)

torch.set_num_threads(1)
init_ray(num_cpus=2)
cfg = make_mlff_config(
    None,
    {
        "data": DATA,
        "model": "schnet",
        "cutoff": 5.0,
        "hidden": 32,
        "layers": 2,
        "train_per_temperature": 20,
        "val_per_temperature": 5,
        "epochs": 4,
        "lr": 0.002,
        "out": "runs/mlff",
        "registry": "runs/registry",
    },
)
result = train_model(cfg)
maes = [r["val_force_mae"] for r in result.history]
print(
    f"saved {result.entry.name}; validation force MAE per epoch (eV/Å): {', '.join(f'{m:.3f}' for m in maes)}"
)
print(f"force MAE decreased: {maes[-1] < maes[0]}")

table = evaluate_models(
    [result.entry], DATA, ["LGPS", "Li3PS4", "Li4GeS4"], "runs/mlff/evaluation", n_test=50
)
print(format_table(table))

# the saved model as an ASE calculator, and as the batched force provider MD uses
pot = load_potential(result.entry)
rows = labelled_rows(load_material(DATA, "Li3PS4").slice(0, 4))
atoms = row_to_atoms(rows[0])
atoms.calc = ProviderCalculator(pot)
energy, forces = pot.batched(
    rows[0]["numbers"],
    np.stack([r["positions"].reshape(-1, 3) for r in rows]),
    np.stack([r["cell"].reshape(3, 3) for r in rows]),
)
print(
    f"ASE energy {atoms.get_potential_energy():.3f} eV = batched {float(energy[0]):.3f} eV; forces {tuple(forces.shape)}"
)
