"""Reference MD as Ray tasks under other teachers: a user's ASE calculator registered only in the
driver (ASE's EMT), and SevenNet-0 through ``crystalspace mlff reference --teacher sevennet``."""

from __future__ import annotations

import importlib.util

import numpy as np
import pyarrow.parquet as pq
import pytest
from _paths import DATA
from ase.build import bulk
from ase.calculators.emt import EMT
from typer.testing import CliRunner

from crystalspace.md.reference import TEACHER_KEY, generate_reference
from crystalspace.mlff.data import labelled_rows, load_material
from crystalspace.potentials import AseCalculatorProvider, register_provider
from crystalspace.potentials import base as registry

CIF = DATA / "mlff_subset" / "Li3PS4_chgnet_relaxed.cif"


def test_a_calculator_registered_in_the_driver_labels_ray_tasks(ray_session, tmp_path, monkeypatch):
    for table in ("_REGISTRY", "_INFO", "_CHECKS"):
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    register_provider("emt", lambda device="cpu": AseCalculatorProvider(EMT(), name="emt-ase"))
    cu = bulk("Cu", "fcc", a=3.6, cubic=True) * 2
    paths = generate_reference({"Cu": cu}, [300.0, 600.0], tmp_path, steps=4, interval=2, teacher="emt")
    table = pq.read_table(paths["Cu"])
    assert table.schema.metadata[TEACHER_KEY] == b"emt"
    assert set(table["source"].to_pylist()) == {"emt-ase"}
    assert table.num_rows == 6  # steps 0, 2, 4 per temperature
    assert all(np.isfinite(e) for e in table["energy"].to_pylist())


@pytest.mark.slow  # the worker imports sevenn and builds SevenNet-0 (~10 s of CPU), then 5 MD steps
@pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason='needs "crystalspace[sevennet]"')
def test_cli_reference_with_sevennet(ray_session, tmp_path):
    from crystalspace.cli import app

    out = tmp_path / "ref"
    args = ["mlff", "reference", str(CIF), "--out", str(out), "--teacher", "sevennet",
            "--temperatures", "600", "--steps", "4", "--interval", "2"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"Li3PS4: {out / 'Li3PS4.parquet'} (teacher sevennet)" in res.output
    assert pq.read_schema(out / "Li3PS4.parquet").metadata[TEACHER_KEY] == b"sevennet"
    table = load_material(out, "Li3PS4")
    rows = labelled_rows(table)
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert set(table["source"].to_pylist()) == {"sevennet-0-11Jul2024"}
    assert rows[0]["forces"].shape == (48,)
    assert abs(rows[0]["energy"] / 16 + 4.39) < 0.05  # SevenNet-0's -70.19 eV for the relaxed cell
    assert np.abs(table["stress"].to_pylist()[0]).max() < 10  # GPa
