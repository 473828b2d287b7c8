"""Real AIMD output (vasprun.xml, OUTCAR, XDATCAR, extxyz, ...) → structure-row Parquet."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from crystalspace.atoms.io import (
    StructureError,
    atoms_to_row,
    check_structure,
    read_structures,
    write_structures,
)


def ingest(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    material: str | None = None,
    require_labels: bool = True,
) -> int:
    """Read every frame of ``paths`` and write them as one structure-row Parquet file ``out``.

    Each row keeps ``source`` (file name) and ``step`` (frame index), plus ``material`` when given.
    With ``require_labels`` (default) frames without energy and forces (e.g. an XDATCAR) are a clear
    error; overlapping atoms are always an error. Nothing is written unless every file reads.
    Returns the number of frames written.
    """
    rows = []
    for path in paths:
        images = read_structures(path)
        for k, atoms in enumerate(images):
            name = f"{Path(path).name} frame {k}"
            check_structure(atoms, name=name)
            row = atoms_to_row(atoms, id=f"{Path(path).stem}-{k}", source=str(path), step=k)
            if material is not None:
                row["material"] = material
            if require_labels and (row["energy"] is None or row["forces"] is None):
                raise StructureError(
                    f"{name}: no energy/forces in the file (pass --no-labels to keep unlabelled frames)"
                )
            rows.append(row)
    if not rows:
        raise StructureError("no structures to ingest")
    write_structures(out, rows)
    return len(rows)
