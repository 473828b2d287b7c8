"""Dataset builder: any structure table -> rows (formula, structure), composition splits, families."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from crystalspace.errors import UserError
from crystalspace.runtime import shared_data

#: The default training tables, under the shared data folder (``$CRYSTALSPACE_DATA`` or ``../shared/data``).
DEFAULT_TABLES = (
    "structures_small/mp_binary_le20sites_mp20format.csv.gz",
    "structures_small/mp_20_resplit_test_subset.csv.gz",
)
STUDY_MP12_SIZE = 18_776  # AlphaCrystal-II "Mp_12"
FAMILIES = ("all", "binary", "ternary", "quaternary", "cubic")


class CSPDataError(UserError, ValueError):
    """Bad structure table or dataset request."""


@dataclass
class Entry:
    """One structure of the dataset (sites sorted by atomic number)."""

    material_id: str
    formula: str
    structure: Structure
    spacegroup: int

    @property
    def n_elements(self) -> int:
        return len(self.structure.composition.elements)


def sort_sites(structure: Structure) -> Structure:
    """Sites ordered by atomic number (stable), so rows of the matrices group by element."""
    return structure.get_sorted_structure(key=lambda s: s.specie.Z)


def read_table(path: str | Path, max_atoms: int = 12, limit: int | None = None) -> list[Entry]:
    """Read a CSV/Parquet table with a ``cif`` column; keep cells with <= ``max_atoms`` sites."""
    path = Path(path)
    if not path.exists():
        raise CSPDataError(f"structure table not found: {path}")
    if path.suffix == ".parquet":
        from crystalspace.tables import read_frame

        df = read_frame(path, "structure table")
    else:
        try:
            df = pd.read_csv(path, keep_default_na=False, na_values=[""])
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise CSPDataError(f"cannot read structure table {path}: {str(exc).splitlines()[0]}") from None
    if "cif" not in df.columns:
        raise CSPDataError(f"{path} has no 'cif' column")
    ids = (
        df["material_id"].astype(str)
        if "material_id" in df.columns
        else pd.Series(range(len(df))).astype(str)
    )
    out: list[Entry] = []
    for mid, cif in zip(ids, df["cif"], strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                s = Structure.from_str(cif, fmt="cif")
            except Exception as exc:  # pymatgen raises many types for a malformed CIF
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise CSPDataError(f"{path}: row {mid}: cannot parse its 'cif' ({first})") from None
        if len(s) > max_atoms or not s.is_ordered:
            continue
        try:
            sg = SpacegroupAnalyzer(s, symprec=0.1).get_space_group_number()
        except Exception:  # spglib can fail on odd cells
            sg = 1
        out.append(Entry(mid, s.composition.reduced_formula, sort_sites(s), sg))
        if limit is not None and len(out) >= limit:
            break
    return out


def load_default(max_atoms: int = 12, limit: int | None = None) -> list[Entry]:
    """The shared MP tables (binary <= 20 sites + mp_20 test subset), deduplicated by material id."""
    seen: set[str] = set()
    rows: list[Entry] = []
    for name in DEFAULT_TABLES:
        for e in read_table(shared_data(name), max_atoms=max_atoms):
            if e.material_id not in seen:
                seen.add(e.material_id)
                rows.append(e)
            if limit is not None and len(rows) >= limit:
                return rows
    return rows


def family_of(entry: Entry, name: str) -> bool:
    """Whether ``entry`` belongs to family ``name`` (all/binary/ternary/quaternary/cubic)."""
    if name == "all":
        return True
    if name == "cubic":
        return entry.spacegroup >= 195
    n = {"binary": 2, "ternary": 3, "quaternary": 4}.get(name)
    if n is None:
        raise CSPDataError(f"unknown family {name!r}; choose from {', '.join(FAMILIES)}")
    return entry.n_elements == n


def split_by_formula(
    entries: list[Entry], test_frac: float = 0.1, seed: int = 0
) -> tuple[list[Entry], list[Entry]]:
    """Split so that no test formula occurs in training (all polymorphs of a formula go together)."""
    formulas = sorted({e.formula for e in entries})
    rng = np.random.default_rng(seed)
    rng.shuffle(formulas)
    n_test = max(1, round(test_frac * len(formulas)))
    test = set(formulas[:n_test])
    return [e for e in entries if e.formula not in test], [e for e in entries if e.formula in test]
