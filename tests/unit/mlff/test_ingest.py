"""Ingest labelled frames (extxyz, vasprun, ...) into structure rows; bad files are one clear error
and write nothing."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from crystalspace.atoms.io import StructureError
from crystalspace.mlff.ingest import ingest


def test_ingest_extxyz_and_bad_input(tmp_path) -> None:
    frames = []
    for k in range(3):
        a = bulk("Li", "bcc", a=3.45, cubic=True)
        a.rattle(0.05, seed=k)
        a.calc = SinglePointCalculator(a, energy=-3.0 - k, forces=np.full((2, 3), 0.1 * k))
        frames.append(a)
    write(tmp_path / "md.extxyz", frames)
    n = ingest([tmp_path / "md.extxyz"], tmp_path / "li.parquet", material="Li")
    table = pq.read_table(tmp_path / "li.parquet")
    assert n == table.num_rows == 3
    assert table["energy"].to_pylist() == [-3.0, -4.0, -5.0]
    assert table["material"].to_pylist() == ["Li"] * 3
    (tmp_path / "junk.xml").write_text("<modeling><not vasp")
    with pytest.raises(StructureError, match=r"junk\.xml: cannot parse"):
        ingest([tmp_path / "junk.xml"], tmp_path / "junk.parquet")
    write(tmp_path / "POSCAR", bulk("Li", "bcc", a=3.45), format="vasp")
    with pytest.raises(StructureError, match="no energy/forces"):
        ingest([tmp_path / "POSCAR"], tmp_path / "nolabels.parquet")
    overlap = Atoms("Li2", positions=[[0, 0, 0], [0.1, 0, 0]], cell=[5, 5, 5], pbc=True)
    overlap.calc = SinglePointCalculator(overlap, energy=0.0, forces=np.zeros((2, 3)))
    write(tmp_path / "overlap.extxyz", overlap)
    with pytest.raises(StructureError, match="overlap"):
        ingest([tmp_path / "overlap.extxyz"], tmp_path / "overlap.parquet")
    assert not (tmp_path / "junk.parquet").exists()
    assert not (tmp_path / "nolabels.parquet").exists()
    assert not (tmp_path / "overlap.parquet").exists()
