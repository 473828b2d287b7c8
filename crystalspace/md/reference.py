"""Reference trajectories from the universal potential CHGNet (offline: its weights ship in the wheel),
the training data of :mod:`crystalspace.mlff` (here, above :mod:`crystalspace.potentials`, which builds CHGNet).

Each (structure, temperature, run) is one Ray task: Maxwell–Boltzmann velocities, a short
equilibration, then Langevin NVT with frames recorded every ``interval`` steps as structure rows
(energy, forces, stress from CHGNet) with ``material``, ``temperature_K``, ``run``, ``step`` and
``phase`` columns — the layout of ``shared/data/mlff_reference``. Labels are CHGNet's, not DFT.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crystalspace.atoms.io import GPA, atoms_to_row, check_structure, read_structures, write_structures


def chgnet_trajectory(
    atoms: Any,
    material: str,
    temperature: float,
    run: int = 0,
    steps: int = 200,
    interval: int = 10,
    equilibration: int = 0,
    timestep_fs: float = 2.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One CHGNet NVT (Langevin) trajectory as structure rows (runs where it is called)."""
    import torch
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from crystalspace.potentials.chgnet import chgnet_calculator

    torch.set_num_threads(1)
    atoms = atoms.copy()
    atoms.calc = chgnet_calculator("cpu")
    rng = np.random.default_rng([seed, int(temperature), run])
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
    rows: list[dict[str, Any]] = []

    def record() -> None:
        step = dyn.nsteps
        if step < equilibration or (step - equilibration) % interval:
            return
        row = atoms_to_row(atoms, id=f"{material}-{int(temperature)}-{run}-{step}", source="chgnet-0.3.0")
        row["stress"] = (atoms.get_stress(voigt=True) / GPA).astype(np.float32)  # CHGNet keeps a 3×3
        row.update(material=material, temperature_K=int(temperature), run=run, step=step, phase="production")
        rows.append(row)

    dyn.attach(record, interval=1)
    dyn.run(steps)
    return rows


def generate_reference(
    structures: dict[str, Any],
    temperatures: Sequence[float],
    out: str | os.PathLike[str],
    runs: int = 1,
    steps: int = 200,
    interval: int = 10,
    equilibration: int = 0,
    seed: int = 0,
) -> dict[str, Path]:
    """Run CHGNet MD for every (material, temperature, run) as Ray tasks; one Parquet per material.

    ``structures`` maps material names to ASE ``Atoms``. Returns the written file per material.
    """
    import ray

    from crystalspace.runtime import as_completed, init_ray

    for name, atoms in structures.items():
        check_structure(atoms, name=name)
    init_ray()
    task = ray.remote(num_cpus=1)(chgnet_trajectory)
    jobs = {
        task.remote(atoms, name, t, r, steps, interval, equilibration, 2.0, seed): name
        for name, atoms in structures.items()
        for t in temperatures
        for r in range(runs)
    }
    collected: dict[str, list[dict[str, Any]]] = {name: [] for name in structures}
    for name, rows in as_completed(jobs, "reference MD", "frames", lambda _, rows: len(rows), "shards"):
        collected[name].extend(rows)
    paths = {}
    for name, rows in collected.items():
        rows.sort(key=lambda r: (r["temperature_K"], r["run"], r["step"]))
        path = Path(out) / f"{name}.parquet"
        write_structures(path, rows)
        paths[name] = path
    return paths


def load_structures(files: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """Material name (file stem) → the first structure of each file."""
    return {Path(f).stem.split("_")[0]: read_structures(f, index=0)[0] for f in files}
