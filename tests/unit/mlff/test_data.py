"""Reference frames for training: per-temperature splits without overlap, missing forces and an
unknown material are one clear error, and the MLFF config validates its settings."""

from __future__ import annotations

import _paths
import numpy as np
import pyarrow as pa
import pytest

from crystalspace.atoms.io import StructureError
from crystalspace.config import ConfigError
from crystalspace.mlff.config import make_mlff_config
from crystalspace.mlff.data import labelled_rows, load_material, split_frames

DATA = str(_paths.DATA / "mlff_subset")  # 300 frames per material, see README there


def test_splits_and_missing_forces() -> None:
    table = load_material(DATA, "Li3PS4")
    split = split_frames(table, 20, 5, 50, seed=0)
    temps = np.asarray(table["temperature_K"].to_numpy())
    assert len(split.train) == 100
    assert len(split.val) == 25
    assert len(split.test) == 50
    assert set(np.unique(temps[split.train], return_counts=True)[1]) == {20}  # per temperature
    assert not set(split.train) & set(split.val)
    assert not set(split.test) & (set(split.train) | set(split.val))
    broken = table.slice(0, 4)
    forces = pa.array([None, *broken["forces"].to_pylist()[1:]], broken["forces"].type)
    nulls = broken.set_column(broken.column_names.index("forces"), "forces", forces)
    with pytest.raises(StructureError, match="lacks forces"):
        labelled_rows(nulls, name="x")
    with pytest.raises(StructureError, match="no reference data"):
        load_material(DATA, "Unobtainium")
    with pytest.raises(ConfigError, match="epochs"):
        make_mlff_config(None, {"epochs": "0"})
