"""Reference sets of known materials (a versioned input, like the oxidation table).

A reference set is a Parquet table of reduced compositions (``z1..z4`` ascending, ``n1..n4``,
0-padded, ``formula``). The default, ``mp``, ships inside the package
(``crystalspace/data/known_mp.parquet``, provenance in ``crystalspace/data/README.md``); users
pass their own Parquet or CSV file (a ``formula`` column) instead.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from crystalspace.chem.elements import ChemistryError
from crystalspace.chem.formula import format_formula, parse_formula
from crystalspace.storage import first_line

log = logging.getLogger(__name__)

DEFAULT_REFERENCE = "mp"
MAX_KNOWN_ARITY = 4
_Z_BITS, _N_BITS = 7, 8


def pack_keys(z: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pack rows of ascending atomic numbers and counts (``[rows, k]``, k <= 4, 0-padded) into
    one uint64 key per composition."""
    key = np.zeros(z.shape[0], dtype=np.uint64)
    for i in range(z.shape[1]):
        shift = np.uint64(i * (_Z_BITS + _N_BITS))
        zi = z[:, i].astype(np.uint64) << np.uint64(_N_BITS)
        key |= (zi | n[:, i].astype(np.uint64)) << shift
    return key


@dataclass(frozen=True)
class KnownSet:
    """Sorted composition keys of a reference set, with its name and content hash."""

    name: str
    sha256: str
    keys: np.ndarray  # uint64, sorted, unique
    z: np.ndarray  # uint8 [M, 4] ascending atomic numbers, 0-padded, aligned with keys
    n: np.ndarray  # uint8 [M, 4] reduced counts, aligned with keys

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.sha256[:12]}"

    def contains(self, z: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Boolean mask: which rows (ascending ``z``, counts ``n``) are known. A count above 255
        (which a key cannot hold, and no reference composition has) is never known."""
        packable = np.asarray((n <= (1 << _N_BITS) - 1).all(axis=1) & (z < (1 << _Z_BITS)).all(axis=1))
        keys = pack_keys(np.where(packable[:, None], z, 0), np.where(packable[:, None], n, 0))
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, len(self.keys) - 1)
        found = self.keys[pos] == keys if len(self.keys) else np.zeros(len(keys), bool)
        return found & packable


def compositions_table(formulas: Iterable[str], source: str) -> tuple[pa.Table, int]:
    """Reduce formulas to unique compositions of 2..4 elements as a reference table.

    Returns the table and the number of formulas skipped (unparseable, 1 or >4 elements,
    a count above 255).
    """
    rows: dict[tuple[tuple[int, int], ...], str] = {}
    skipped = 0
    for text in formulas:
        try:
            counts = parse_formula(text)
        except ChemistryError:
            skipped += 1
            continue
        if not 2 <= len(counts) <= MAX_KNOWN_ARITY or max(counts.values()) > 255:
            skipped += 1
            continue
        rows.setdefault(tuple(sorted(counts.items())), format_formula(counts))
    cols: dict[str, list[int] | list[str]] = {f"{c}{i}": [] for c in "zn" for i in range(1, 5)}
    for comp in rows:
        for i in range(4):
            z, n = comp[i] if i < len(comp) else (0, 0)
            cols[f"z{i + 1}"].append(z)  # type: ignore[arg-type]
            cols[f"n{i + 1}"].append(n)  # type: ignore[arg-type]
    table = pa.table(
        {
            "arity": pa.array([len(c) for c in rows], pa.uint8()),
            **{k: pa.array(v, pa.uint8()) for k, v in cols.items()},
            "formula": pa.array(list(rows.values()), pa.string()),
        }
    ).sort_by([("arity", "ascending")] + [(f"z{i}", "ascending") for i in range(1, 5)])
    meta = {b"crystalspace.reference.source": source.encode()}
    return table.replace_schema_metadata(meta), skipped


def _read_reference(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    # CSV (optionally gzipped) with a formula column; "NaN" (sodium nitride) is a formula.
    opts = pacsv.ConvertOptions(strings_can_be_null=False, column_types={"formula": pa.string()})
    table = pacsv.read_csv(path, convert_options=opts)
    if "formula" not in table.column_names:
        raise ChemistryError(f"{path}: reference CSV needs a 'formula' column")
    out, skipped = compositions_table(table.column("formula").to_pylist(), str(path))
    if skipped:
        log.warning("%s: skipped %d formulas outside 2..4 elements or unparseable", path, skipped)
    return out


@cache
def load_known(name_or_path: str = DEFAULT_REFERENCE) -> KnownSet:
    """Load the shipped reference set (``"mp"``) or a user file (Parquet table as written by
    `compositions_table`, or CSV with a ``formula`` column)."""
    if name_or_path == DEFAULT_REFERENCE:
        path = Path(str(resources.files("crystalspace") / "data" / "known_mp.parquet"))
        name = DEFAULT_REFERENCE
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ChemistryError(f"reference set {name_or_path!r} not found (use 'mp' or a file path)")
        name = path.stem
    try:
        table = _read_reference(path)
    except (OSError, pa.ArrowException) as exc:
        raise ChemistryError(
            f"reference set {path}: cannot read it as Parquet or CSV ({first_line(exc)})"
        ) from None
    missing = [c for c in ("z1", "z2", "z3", "z4", "n1", "n2", "n3", "n4") if c not in table.column_names]
    if missing:
        raise ChemistryError(
            f"reference set {path}: not a reference table (no column(s) {', '.join(missing)})"
        )
    z = np.stack([table.column(f"z{i}").to_numpy() for i in range(1, 5)], axis=1)
    n = np.stack([table.column(f"n{i}").to_numpy() for i in range(1, 5)], axis=1)
    keys, first = np.unique(pack_keys(z, n), return_index=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return KnownSet(name, digest, keys, z[first].astype(np.uint8), n[first].astype(np.uint8))
