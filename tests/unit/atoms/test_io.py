"""Structure rows: round trips through ASE, pymatgen and Parquet, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ase")
pytest.importorskip("vesin")

from _paths import SHARED
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from crystalspace.atoms import (
    StructureError,
    atoms_to_row,
    atoms_to_structure,
    check_structure,
    read_structure_table,
    read_structures,
    row_to_atoms,
    structure_to_atoms,
    table_to_rows,
    write_structures,
)

REFERENCE_CIF = SHARED / "data" / "mlff_reference" / "LGPS_chgnet_relaxed.cif"


def _labelled_nacl():
    atoms = bulk("NaCl", "rocksalt", a=5.64).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    forces = np.random.default_rng(0).normal(size=(len(atoms), 3))
    atoms.calc = SinglePointCalculator(atoms, energy=-3.5, forces=forces, stress=np.arange(6) * 1e-3)
    return atoms


def test_row_round_trip_through_parquet_keeps_geometry_and_labels(tmp_path):
    atoms = _labelled_nacl()
    rows = [atoms_to_row(atoms, id=f"nacl-{k}", source="test", step=k) for k in range(3)]
    write_structures(tmp_path / "s.parquet", rows)
    table = read_structure_table(tmp_path / "s.parquet")
    assert table.num_rows == 3
    assert "step" in table.column_names
    back = row_to_atoms(table_to_rows(table)[2])
    assert back.get_chemical_formula() == atoms.get_chemical_formula()
    np.testing.assert_allclose(back.positions, atoms.positions, atol=1e-5)
    np.testing.assert_allclose(back.cell[:], atoms.cell[:])
    assert back.get_potential_energy() == pytest.approx(-3.5)
    np.testing.assert_allclose(back.get_forces(), atoms.get_forces(), atol=1e-6)
    np.testing.assert_allclose(back.get_stress(), atoms.get_stress(), rtol=1e-5)
    assert not list(tmp_path.glob(".*tmp*"))


def test_pymatgen_round_trip():
    atoms = bulk("Si", "diamond", a=5.43)
    structure = atoms_to_structure(atoms)
    assert structure.composition.reduced_formula == "Si"
    again = structure_to_atoms(structure)
    np.testing.assert_allclose(again.positions, atoms.positions, atol=1e-8)


def test_reads_cif_and_extxyz(tmp_path):
    if REFERENCE_CIF.exists():
        (lgps,) = read_structures(REFERENCE_CIF)
        assert len(lgps) == 50
    atoms = _labelled_nacl()
    atoms.write(tmp_path / "a.extxyz")
    (back,) = read_structures(tmp_path / "a.extxyz")
    assert back.get_potential_energy() == pytest.approx(-3.5)


@pytest.mark.parametrize("content", ["", "not a structure\n", "data_x\n_cell_length_a oops\n"])
def test_malformed_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.cif"
    path.write_text(content)
    with pytest.raises(StructureError, match=r"bad\.cif"):
        read_structures(path)
    with pytest.raises(StructureError, match="no such"):
        read_structures(tmp_path / "missing.cif")


def test_overlapping_atoms_detected_across_the_boundary():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    check_structure(atoms)
    atoms.positions[1] = atoms.positions[0] + atoms.cell[0] - [0.2, 0, 0]  # image 0.2 Å away
    with pytest.raises(StructureError, match=r"overlap at 0\.200"):
        check_structure(atoms, min_distance=0.5, name="Cu4")
