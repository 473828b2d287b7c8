"""Reference MD under any teacher, in process (no Ray): a user's ASE calculator (ASE's EMT) registered
as a provider labels the frames; files record their teacher; the seed-split report names it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from crystalspace.atoms.io import rows_to_table, write_structures
from crystalspace.errors import UserError
from crystalspace.md.reference import TEACHER_KEY, reference_teacher, teacher_trajectory
from crystalspace.md.report import seed_split
from crystalspace.potentials import AseCalculatorProvider, provider_info, register_provider
from crystalspace.potentials import base as registry


@pytest.fixture
def emt_teacher(monkeypatch):
    """ASE's EMT registered as the provider ``emt`` for one test (the registry restored after)."""
    for table in ("_REGISTRY", "_INFO", "_CHECKS"):
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    register_provider("emt", lambda device="cpu": AseCalculatorProvider(EMT(), name="emt-ase"), {"epochs": 0})
    return "emt"


def test_a_registered_ase_calculator_is_a_teacher(emt_teacher):
    cu = bulk("Cu", "fcc", a=3.6, cubic=True) * 2  # 32 atoms: EMT knows Cu, not Li/P/S
    rows = teacher_trajectory(cu, "Cu", 300.0, steps=4, interval=2, teacher=emt_teacher)
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert {r["source"] for r in rows} == {"emt-ase"}
    reference = EMT()
    for r in rows:
        atoms = cu.copy()
        atoms.positions = np.reshape(r["positions"], (-1, 3))
        atoms.calc = reference
        assert r["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-4)
        assert np.abs(np.reshape(r["forces"], (-1, 3)) - atoms.get_forces()).max() < 1e-3
        assert r["stress"].shape == (6,)  # EMT implements stress: recorded (GPa)
    assert np.abs(rows[-1]["forces"]).max() > 1e-3  # the atoms moved off the lattice


def _reference(path, teacher: str | None) -> str:
    cu = bulk("Cu", "fcc", a=3.6)
    table = rows_to_table(
        [{"numbers": cu.numbers, "positions": cu.positions.ravel(), "cell": cu.cell[:].ravel()}]
    )
    write_structures(
        path, table.replace_schema_metadata({TEACHER_KEY: teacher.encode()}) if teacher else table
    )
    return str(path)


def test_reference_files_record_their_teacher(tmp_path):
    seven, chg, old = (_reference(tmp_path / f"{t}.parquet", t) for t in ("sevennet", "chgnet", None))
    assert pq.read_schema(seven).metadata[TEACHER_KEY] == b"sevennet"
    assert reference_teacher([seven]) == "sevennet"
    assert reference_teacher([seven, old, tmp_path]) == "sevennet"  # a directory records none
    assert reference_teacher([old]) is None
    with pytest.raises(UserError, match=r"^reference files of different teachers \(chgnet, sevennet\)"):
        reference_teacher([seven, chg])


def test_seed_split_models_carry_the_teacher():
    frames = pd.DataFrame({"run": [0, 1, 2], "source": ["sevennet-0-11Jul2024"] * 3})
    _, models = seed_split(frames, "sevennet")
    assert [m.name for m in models] == ["sevennet-0-11Jul2024 seed 1", "sevennet-0-11Jul2024 seed 2"]
    assert models[0].info == provider_info("sevennet")
    _, models = seed_split(frames.drop(columns="source"), "chgnet")
    assert models[0].name == "chgnet seed 1"
