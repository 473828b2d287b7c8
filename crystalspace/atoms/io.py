"""Structure rows: the one schema that datasets, trajectories and predictions share.

A structure row is a plain dict (and an Arrow row) with the columns of :data:`STRUCTURE_SCHEMA`:
``numbers`` (n atomic numbers), ``positions`` (n×3 Cartesian, Å, flattened), ``cell`` (lattice
vectors as rows, 9 values, Å), ``pbc``, and optional labels ``energy`` (eV, total), ``forces``
(n×3, eV/Å) and ``stress`` (Voigt xx, yy, zz, yz, xz, xy in GPa, ASE's sign convention). Extra
columns (temperature, step, replica, ...) ride along untouched. ASE ``Atoms`` and pymatgen
``Structure`` converters live here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crystalspace.errors import UserError
from crystalspace.storage import atomic_path

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core import Structure

STRUCTURE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("numbers", pa.list_(pa.uint8())),
        ("positions", pa.list_(pa.float32())),
        ("cell", pa.list_(pa.float64(), 9)),
        ("pbc", pa.list_(pa.bool_(), 3)),
        ("energy", pa.float64()),
        ("forces", pa.list_(pa.float32())),
        # 6 Voigt values or null; a variable list, since pyarrow < 26 cannot read null fixed-size lists
        ("stress", pa.list_(pa.float32())),
        ("source", pa.string()),
    ]
)
"""Columns every structure table has (labels may be null)."""

REQUIRED = ("numbers", "positions", "cell")
GPA = 1.0 / 160.21766208  # eV/Å³ per GPa (ase.units.GPa)


class StructureError(UserError, ValueError):
    """A structure that cannot be read or used (unparsable file, overlapping atoms, no labels)."""


def atoms_to_row(atoms: Atoms, id: str = "", source: str = "", **extra: Any) -> dict[str, Any]:
    """One structure row from ASE ``Atoms``; labels are taken from an attached calculator."""
    row: dict[str, Any] = {
        "id": id,
        "numbers": atoms.numbers.astype(np.uint8),
        "positions": atoms.positions.astype(np.float32).ravel(),
        "cell": np.asarray(atoms.cell[:], dtype=np.float64).ravel(),
        "pbc": np.asarray(atoms.pbc, dtype=bool),
        "energy": None,
        "forces": None,
        "stress": None,
        "source": source,
    }
    calc = atoms.calc
    if calc is not None:
        results = getattr(calc, "results", {})
        if "energy" in results:
            row["energy"] = float(results["energy"])
        if "forces" in results:
            row["forces"] = np.asarray(results["forces"], dtype=np.float32).ravel()
        if "stress" in results and np.size(results["stress"]) == 6:
            row["stress"] = (np.asarray(results["stress"]) / GPA).astype(np.float32)
    row.update(extra)
    return row


def row_to_atoms(row: dict[str, Any]) -> Atoms:
    """ASE ``Atoms`` from a structure row, with labels attached as a single-point calculator."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    numbers = np.asarray(row["numbers"], dtype=int)
    pbc = row.get("pbc")
    atoms = Atoms(
        numbers=numbers,
        positions=np.asarray(row["positions"], dtype=np.float64).reshape(-1, 3),
        cell=np.asarray(row["cell"], dtype=np.float64).reshape(3, 3),
        pbc=True if pbc is None else np.asarray(pbc, dtype=bool),
    )
    labels: dict[str, Any] = {}
    if row.get("energy") is not None:
        labels["energy"] = float(row["energy"])
    if row.get("forces") is not None:
        labels["forces"] = np.asarray(row["forces"], dtype=np.float64).reshape(-1, 3)
    if row.get("stress") is not None:
        labels["stress"] = np.asarray(row["stress"], dtype=np.float64) * GPA
    if labels:
        atoms.calc = SinglePointCalculator(atoms, **labels)
    return atoms


def structure_to_atoms(structure: Structure) -> Atoms:
    """pymatgen ``Structure`` → ASE ``Atoms`` (ordered structures only)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    if not structure.is_ordered:
        raise StructureError(f"{structure.composition.reduced_formula}: disordered structure; order it first")
    return AseAtomsAdaptor.get_atoms(structure)


def atoms_to_structure(atoms: Atoms) -> Structure:
    """ASE ``Atoms`` → pymatgen ``Structure``."""
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_structure(atoms)


def read_structures(path: str | os.PathLike[str], index: str | int = ":") -> list[Atoms]:
    """Read structures from any file ASE reads (CIF, POSCAR, extxyz, vasprun.xml, OUTCAR, XDATCAR).

    Raises :class:`StructureError` with the file name when the file is missing or unparsable.
    """
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise StructureError(f"{path}: no such structure file")
    try:
        images = read(path, index=index)
    except Exception as exc:  # ASE raises many types for malformed input
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if " " not in first and first != type(exc).__name__:  # e.g. UnknownFileTypeError('parquet')
            first = f"{type(exc).__name__}: {first}"
        raise StructureError(f"{path}: cannot parse structure file ({first})") from None
    images = images if isinstance(images, list) else [images]
    if not images or any(len(a) == 0 for a in images):
        raise StructureError(f"{path}: no atoms in structure file")
    return images


def rows_to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """An Arrow table of structure rows: the schema's columns first, then any extra columns."""
    rows = list(rows)
    if not rows:
        return STRUCTURE_SCHEMA.empty_table()
    columns: dict[str, Any] = {}
    for field in STRUCTURE_SCHEMA:
        values = [_listify(r.get(field.name)) for r in rows]
        columns[field.name] = pa.array(values, type=field.type)
    extra = [k for k in rows[0] if k not in STRUCTURE_SCHEMA.names]
    for name in extra:
        columns[name] = pa.array([_listify(r.get(name)) for r in rows])
    return pa.table(columns)


def table_to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Structure rows (numpy arrays for the list columns) from an Arrow table."""
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise StructureError(f"structure table lacks column(s) {', '.join(missing)}")
    rows = table.to_pylist()
    for row in rows:
        for key in ("numbers", "positions", "cell", "forces", "stress"):
            if row.get(key) is not None:
                row[key] = np.asarray(row[key])
    return rows


def write_structures(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]] | pa.Table) -> None:
    """Write structure rows to a Parquet file atomically (temporary name, then rename)."""
    table = rows if isinstance(rows, pa.Table) else rows_to_table(rows)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_structure_table(path: str | os.PathLike[str]) -> pa.Table:
    """Read a structure Parquet file (or directory) and check it has the required columns."""
    from crystalspace.tables import TableError, read_table

    try:
        table = read_table(path, "structure table")
    except TableError as exc:
        raise StructureError(str(exc)) from None
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise StructureError(f"{path}: structure table lacks column(s) {', '.join(missing)}")
    return table


def check_structure(atoms: Atoms, min_distance: float = 0.5, name: str = "structure") -> None:
    """Raise :class:`StructureError` if two atoms (periodic images included) are closer than ``min_distance`` Å."""
    from vesin import NeighborList

    if len(atoms) == 0:
        raise StructureError(f"{name}: no atoms")
    positions = np.asarray(atoms.positions, dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        raise StructureError(f"{name}: non-finite atomic positions")
    periodic = bool(np.all(atoms.pbc))
    box = np.asarray(atoms.cell[:], dtype=np.float64)
    if periodic and abs(np.linalg.det(box)) < 1e-6:
        raise StructureError(f"{name}: degenerate cell (zero volume)")
    i, j, d = NeighborList(cutoff=min_distance, full_list=False).compute(
        points=positions, box=box, periodic=periodic, quantities="ijd"
    )
    if len(d):
        k = int(np.argmin(d))
        sym = atoms.get_chemical_symbols()
        raise StructureError(
            f"{name}: atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) overlap at {d[k]:.3f} Å "
            f"(< {min_distance} Å)"
        )


def _listify(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value
