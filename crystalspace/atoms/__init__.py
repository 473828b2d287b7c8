"""Structures: one row schema for datasets and trajectories, readers, converters and checks."""

from crystalspace.atoms.io import (
    STRUCTURE_SCHEMA,
    StructureError,
    atoms_to_row,
    atoms_to_structure,
    check_structure,
    read_structure_table,
    read_structures,
    row_to_atoms,
    rows_to_table,
    structure_to_atoms,
    table_to_rows,
    write_structures,
)

__all__ = [
    "STRUCTURE_SCHEMA",
    "StructureError",
    "atoms_to_row",
    "atoms_to_structure",
    "check_structure",
    "read_structure_table",
    "read_structures",
    "row_to_atoms",
    "rows_to_table",
    "structure_to_atoms",
    "table_to_rows",
    "write_structures",
]
