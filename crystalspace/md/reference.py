"""Reference trajectories from a universal potential, the *teacher*: the training data of
:mod:`crystalspace.mlff` (here, above :mod:`crystalspace.potentials`, which builds the teachers).

The teacher is any provider name (:func:`~crystalspace.potentials.get_provider`): ``chgnet`` (CHGNet
0.3.0, the default), ``sevennet`` (SevenNet-0, extra ``crystalspace[sevennet]``), both offline with
weights that ship in their wheels, or a user's own ASE calculator registered under a name with
:func:`~crystalspace.potentials.register_provider` and
:class:`~crystalspace.potentials.AseCalculatorProvider`. One code path serves them all.

Each (structure, temperature, run) is one Ray task: Maxwell–Boltzmann velocities, a short
equilibration, then Langevin NVT with frames recorded every ``interval`` steps as structure rows
(energy, forces, stress from the teacher) with ``material``, ``temperature_K``, ``run``, ``step`` and
``phase`` columns — the layout of ``shared/data/mlff_reference``. Each row's ``source`` is the
teacher's model name (``chgnet-0.3.0``, ``sevennet-0-11Jul2024``) and each file's Parquet metadata
``crystalspace.teacher`` the teacher's provider name (:func:`reference_teacher`). Labels are the
teacher's, not DFT.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalspace.atoms.io import (
    GPA,
    atoms_to_row,
    check_structure,
    read_structures,
    rows_to_table,
    write_structures,
)
from crystalspace.errors import UserError

if TYPE_CHECKING:
    from crystalspace.potentials.base import ForceProvider

TEACHER_KEY = b"crystalspace.teacher"
"""Parquet schema-metadata key of a reference file: the teacher's provider name."""


def teacher_trajectory(
    atoms: Any,
    material: str,
    temperature: float,
    run: int = 0,
    steps: int = 200,
    interval: int = 10,
    equilibration: int = 0,
    timestep_fs: float = 2.0,
    seed: int = 0,
    teacher: str | Callable[..., ForceProvider] = "chgnet",
) -> list[dict[str, Any]]:
    """One NVT (Langevin) trajectory under the teacher as structure rows (runs where it is called).

    ``teacher`` is a provider name or what builds the provider from ``device=`` (a Ray task gets
    :func:`~crystalspace.potentials.base.provider_factory`'s, so a provider registered only in the
    driver works too).
    """
    import torch
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from crystalspace.potentials.ase import as_calculator
    from crystalspace.potentials.base import provider_factory, provider_name

    torch.set_num_threads(1)
    make = provider_factory(teacher) if isinstance(teacher, str) else teacher
    provider = make(device="cpu")
    source = provider_name(provider)
    atoms = atoms.copy()
    atoms.calc = as_calculator(provider)
    stress = "stress" in atoms.calc.implemented_properties
    rng = np.random.default_rng([seed, int(temperature), run])
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
    rows: list[dict[str, Any]] = []

    def record() -> None:
        step = dyn.nsteps
        if step < equilibration or (step - equilibration) % interval:
            return
        row = atoms_to_row(atoms, id=f"{material}-{int(temperature)}-{run}-{step}", source=source)
        if stress:  # Voigt, whatever shape the calculator keeps (CHGNet keeps a 3×3)
            row["stress"] = (atoms.get_stress(voigt=True) / GPA).astype(np.float32)
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
    teacher: str = "chgnet",
) -> dict[str, Path]:
    """Run the teacher's MD for every (material, temperature, run) as Ray tasks; one Parquet per material.

    ``structures`` maps material names to ASE ``Atoms``; ``teacher`` is a provider name (checked
    before Ray starts), recorded in each file's metadata. Returns the written file per material.
    """
    import ray

    from crystalspace.potentials.base import provider_factory
    from crystalspace.runtime import as_completed, init_ray

    make = provider_factory(teacher)
    for name, atoms in structures.items():
        check_structure(atoms, name=name)
    init_ray()
    task = ray.remote(num_cpus=1)(teacher_trajectory)
    jobs = {
        task.remote(atoms, name, t, r, steps, interval, equilibration, 2.0, seed, make): name
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
        write_structures(path, rows_to_table(rows).replace_schema_metadata({TEACHER_KEY: teacher.encode()}))
        paths[name] = path
    return paths


def reference_teacher(paths: Sequence[str | os.PathLike[str]]) -> str | None:
    """The teacher's provider name that reference Parquet files record (:data:`TEACHER_KEY`); None
    when none records one (files written before teachers were recorded are CHGNet's, MD chunk
    directories record none). Files of different teachers are a one-line error."""
    import pyarrow.parquet as pq

    names = set()
    for p in map(Path, paths):
        if p.is_file():
            meta = pq.read_schema(p).metadata or {}
            if TEACHER_KEY in meta:
                names.add(meta[TEACHER_KEY].decode())
    if len(names) > 1:
        raise UserError(f"reference files of different teachers ({', '.join(sorted(names))}): give one")
    return names.pop() if names else None


def load_structures(files: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """Material name (file stem) → the first structure of each file."""
    return {Path(f).stem.split("_")[0]: read_structures(f, index=0)[0] for f in files}
