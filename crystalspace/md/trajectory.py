"""Buffered Parquet trajectories and replica checkpoints, both written atomically.

Frames are buffered in memory and flushed as one Parquet chunk per checkpoint interval
(``<prefix>-<first step>-<last step>.parquet``). The checkpoint is written right after its chunk, so a
restart from a checkpoint at step ``s`` drops any chunk that ends after ``s`` and carries on at
``s + 1``: the trajectory never has a gap or a duplicate frame.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from crystalspace.atoms.io import StructureError, rows_to_table, write_structures
from crystalspace.registry import load_tensors, save_tensors
from crystalspace.storage import atomic_path
from crystalspace.tables import read_table

_CHUNK = re.compile(r"^(?P<prefix>.+)-(?P<first>\d{9})-(?P<last>\d{9})\.parquet$")


class TrajectoryWriter:
    """Buffer structure rows and flush them as atomically written Parquet chunks."""

    def __init__(self, directory: str | os.PathLike[str], prefix: str) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.rows: list[dict[str, Any]] = []
        self.directory.mkdir(parents=True, exist_ok=True)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)

    def flush(self) -> Path | None:
        """Write the buffered frames as one chunk (nothing if the buffer is empty)."""
        if not self.rows:
            return None
        steps = [int(r["step"]) for r in self.rows]
        path = self.directory / f"{self.prefix}-{min(steps):09d}-{max(steps):09d}.parquet"
        write_structures(path, rows_to_table(self.rows))
        self.rows = []
        return path

    def truncate_after(self, step: int) -> None:
        """Delete this writer's chunks that hold frames after ``step`` (written after the last checkpoint)."""
        self.rows = [r for r in self.rows if int(r["step"]) <= step]
        for path in self.directory.glob(f"{self.prefix}-*.parquet"):
            m = _CHUNK.match(path.name)
            if m and m["prefix"] == self.prefix and int(m["last"]) > step:
                path.unlink()


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically: tensors and plain values only (it is read with ``weights_only=True``)."""
    with atomic_path(path) as tmp:
        save_tensors(payload, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return None
    payload: dict[str, Any] = load_tensors(path)
    return payload


def read_trajectory(directory: str | os.PathLike[str]) -> pa.Table:
    """All trajectory chunks under ``directory`` as one table sorted by material, T, replica, step."""
    files = sorted(p for p in Path(directory).rglob("*.parquet") if _CHUNK.match(p.name))
    if not files:
        raise StructureError(f"{directory}: no trajectory chunks")
    table = pa.concat_tables([read_table(p, "trajectory chunk") for p in files], promote_options="default")
    keys = [
        (k, "ascending") for k in ("material", "temperature_K", "replica", "step") if k in table.column_names
    ]
    return table.sort_by(keys)
