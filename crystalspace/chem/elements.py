"""Elements H..Lr (Z 1-103) with Pauling electronegativities, read from SMACT's data files.

SMACT is the field's reference for these tables; we read its shipped text files directly
(``smact/data/element_data.txt``) instead of re-typing them, and without importing SMACT's
heavier Python modules.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from crystalspace.errors import UserError

MAX_Z = 103


class ChemistryError(UserError, ValueError):
    """A user-facing chemistry input error (unknown element, malformed formula, bad table)."""


def smact_data_file(name: str) -> Path:
    """Path of a data file shipped inside the installed ``smact`` package (found without
    importing smact, whose import pulls in pymatgen and pandas)."""
    spec = importlib.util.find_spec("smact")
    if spec is None or not spec.submodule_search_locations:
        raise ChemistryError("the smact package is not installed: pip install 'crystalspace[space]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


@dataclass(frozen=True)
class ElementTable:
    """Symbols and Pauling electronegativities indexed by atomic number (index 0 unused)."""

    symbols: tuple[str, ...]
    pauling: np.ndarray  # float64, NaN where SMACT has no Pauling value

    def z_of(self, symbol: str) -> int:
        """Atomic number of ``symbol``; raises `ChemistryError` for unknown symbols."""
        try:
            return self.symbols.index(symbol, 1)
        except ValueError:
            raise ChemistryError(
                f"unknown element symbol {symbol!r} (expected one of H..Lr, Z 1-{MAX_Z})"
            ) from None


@cache
def element_table() -> ElementTable:
    """The element table for Z 1..103 from SMACT's ``element_data.txt``."""
    symbols = [""] * (MAX_Z + 1)
    pauling = np.full(MAX_Z + 1, np.nan)
    text = smact_data_file("element_data.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        z = int(fields[2])
        if 1 <= z <= MAX_Z:
            symbols[z] = fields[0]
            pauling[z] = math.nan if fields[9] == "None" else float(fields[9])
    missing = [z for z in range(1, MAX_Z + 1) if not symbols[z]]
    if missing:
        raise RuntimeError(f"SMACT element_data.txt lacks Z={missing}")
    return ElementTable(tuple(symbols), pauling)


def parse_elements(text: str) -> list[int]:
    """Parse a comma-separated element list (``"Li,Zn,Sn,O"``) into sorted unique Z values."""
    table = element_table()
    symbols = [s.strip() for s in text.split(",") if s.strip()]
    if not symbols:
        raise ChemistryError("empty element list")
    return sorted({table.z_of(s) for s in symbols})
