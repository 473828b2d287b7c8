"""Reference data and the study's splits.

Training and validation frames are drawn at random *per temperature* from the training material
(LGPS in the study: 6,000 + 500 frames per temperature); test frames are unseen frames of every
material (for the training material: frames in neither train nor validation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crystalspace.atoms.io import StructureError, read_structure_table, table_to_rows


@dataclass
class Split:
    """Row indices into one material's table."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def material_path(data: str | os.PathLike[str], material: str) -> Path:
    """``<data>/<material>.parquet`` with a clear error when missing."""
    path = Path(data) / f"{material}.parquet"
    if not path.exists():
        raise StructureError(f"{path}: no reference data for {material} (run `crystalspace mlff reference`)")
    return path


def load_material(data: str | os.PathLike[str], material: str, phase: str | None = "production") -> pa.Table:
    """One material's frames (optionally only one MD ``phase``)."""
    table = read_structure_table(material_path(data, material))
    if phase is not None and "phase" in table.column_names:
        table = table.filter(pc.equal(table["phase"], phase))
    if table.num_rows == 0:
        raise StructureError(f"{material}: no frames (phase={phase})")
    return table


def split_frames(table: pa.Table, train_per_t: int, val_per_t: int, test: int, seed: int = 0) -> Split:
    """Random train/val frames per temperature; ``test`` random frames from the rest.

    Without a ``temperature_K`` column the whole table counts as one temperature. Asking for more
    frames than exist takes what there is (never overlapping).
    """
    rng = np.random.default_rng(seed)
    temps = (
        np.asarray(table["temperature_K"].to_numpy())
        if "temperature_K" in table.column_names
        else np.zeros(table.num_rows)
    )
    train, val = [], []
    for t in np.unique(temps):
        idx = rng.permutation(np.flatnonzero(temps == t))
        val.append(idx[:val_per_t])  # validation first, so it is never empty when training takes all
        train.append(idx[val_per_t : val_per_t + train_per_t])
    tr, va = np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
    rest = np.setdiff1d(np.arange(table.num_rows), np.concatenate([tr, va]))
    te = np.sort(rng.permutation(rest)[:test])
    return Split(tr, va, te)


def unseen_frames(table: pa.Table, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random frame indices of a material not used for training."""
    rng = np.random.default_rng(seed + 1)
    return np.sort(rng.permutation(table.num_rows)[:n])


def labelled_rows(table: pa.Table, idx: np.ndarray | None = None, name: str = "data") -> list[dict[str, Any]]:
    """Structure rows with energy and forces, checked (missing or non-finite labels → clear error)."""
    if idx is not None:
        table = table.take(pa.array(idx, type=pa.int64()))
    for col in ("energy", "forces"):
        if col not in table.column_names or table[col].null_count:
            raise StructureError(
                f"{name}: training data lacks {col} (missing labels in {table[col].null_count if col in table.column_names else table.num_rows} rows)"
            )
    rows = table_to_rows(table)
    for k, r in enumerate(rows):
        n = len(r["numbers"])
        if r["forces"].size != 3 * n:
            raise StructureError(f"{name}: row {k} has {r['forces'].size} force components for {n} atoms")
        if not (np.isfinite(r["energy"]) and np.isfinite(r["forces"]).all()):
            raise StructureError(f"{name}: row {k} has non-finite energy or forces")
    return rows
