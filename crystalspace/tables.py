"""Reading Parquet tables given by the user, with one clear error for files that are not readable.

Every command that reads a Parquet file it was handed (trajectories, reference data, maps) reads it
through :func:`read_table` or :func:`read_frame`: a missing, empty, truncated or non-Parquet file
raises :class:`TableError` (a :class:`~crystalspace.errors.UserError`) naming the file and the
problem, which the command line prints as one line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crystalspace.errors import UserError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

_MAGIC = b"PAR1"


class TableError(UserError, ValueError):
    """A file given as a Parquet table that is missing, empty or not (valid) Parquet."""


def read_table(
    path: str | os.PathLike[str], what: str = "", columns: Sequence[str] | None = None
) -> pa.Table:
    """The Parquet file (or directory of Parquet files) at ``path`` as an Arrow table.

    ``what`` names the file's role in the message (``"trajectory"`` → ``cannot read trajectory
    x.parquet: …``). Raises :class:`TableError` when the file cannot be read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    label = f"{what} {path}" if what else str(path)
    if not _is_uri(path) and not Path(path).exists():
        raise TableError(f"cannot read {label}: no such file or directory")
    try:
        table = pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (OSError, pa.ArrowException) as exc:
        raise TableError(f"cannot read {label}: {_problem(path, exc)}") from None
    if table.num_columns == 0 and not _is_uri(path) and Path(path).is_dir():
        raise TableError(f"cannot read {label}: no Parquet files in the directory")
    return table


def read_frame(
    path: str | os.PathLike[str], what: str = "", columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """:func:`read_table` as a pandas DataFrame."""
    return read_table(path, what, columns).to_pandas()


def _is_uri(path: str | os.PathLike[str]) -> bool:
    return isinstance(path, str) and "://" in path


def _problem(path: str | os.PathLike[str], exc: BaseException) -> str:
    """What is wrong with the file, in a few words (the first line of pyarrow's message in brackets)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.removeprefix("Error creating dataset. ")
    if text.startswith("Could not open Parquet input source '"):
        text = text.split("': ", 1)[-1]
    text = text.split(". ", 1)[0].rstrip(".")  # pyarrow's first sentence says it
    if _is_uri(path):
        return text
    p = Path(path)
    if p.is_dir():
        return f"not a directory of Parquet files ({text})"
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(0, size - 4))
            tail = fh.read(4)
    except OSError as err:
        return err.strerror or text
    if size == 0:
        return "empty file"
    if head != _MAGIC:
        return f"not a Parquet file ({text})"
    if tail != _MAGIC:
        return f"truncated Parquet file ({text})"
    return f"corrupt Parquet file ({text})"
