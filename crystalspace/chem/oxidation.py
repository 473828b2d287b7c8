"""Named, versioned oxidation-state sets (SMACT's data files) and user-supplied tables.

A set is identified by its name and a content hash; both go into every output so a lake
built with one table can never be mixed with another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from crystalspace.chem.elements import MAX_Z, ChemistryError, element_table, smact_data_file

#: Named sets -> file in SMACT's data directory (the mapping SMACT itself uses).
NAMED_SETS: dict[str, str] = {
    "smact14": "oxidation_states.txt",
    "icsd16": "oxidation_states_icsd.txt",
    "icsd24": "oxidation_states_icsd24_filtered.txt",
    "pymatgen_sp": "oxidation_states_SP.txt",
    "wiki": "oxidation_states_wiki.txt",
}
DEFAULT_SET = "smact14"
#: Elements beyond Lr that SMACT's tables list; the space stops at Z=103, so they are skipped.
_BEYOND_LR = frozenset(
    ["Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"]
)


@dataclass(frozen=True)
class OxidationSet:
    """Oxidation states per atomic number (index 0 unused; empty tuple = no states)."""

    name: str
    sha256: str
    states: tuple[tuple[int, ...], ...]

    @property
    def tag(self) -> str:
        """``name@hash12``: the identifier stored in lake rows and manifests."""
        return f"{self.name}@{self.sha256[:12]}"

    @property
    def n_species(self) -> int:
        """Number of (element, oxidation state) species in the set."""
        return sum(len(s) for s in self.states)

    def charge_range(self) -> tuple[int, int]:
        """Smallest and largest oxidation state in the set."""
        flat = [q for s in self.states for q in s]
        return min(flat), max(flat)


def _parse(text: str, source: str) -> tuple[tuple[int, ...], ...]:
    table = element_table()
    states: list[tuple[int, ...]] = [()] * (MAX_Z + 1)
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        symbol, *values = line.split()
        if symbol in _BEYOND_LR:
            continue
        try:
            z = table.z_of(symbol)
        except ChemistryError:
            raise ChemistryError(
                f"{source}:{lineno}: unknown element symbol {symbol!r} in oxidation-state table"
            ) from None
        try:
            charges = tuple(sorted({int(v) for v in values}))
        except ValueError:
            raise ChemistryError(
                f"{source}:{lineno}: oxidation states must be integers, got {' '.join(values)!r}"
            ) from None
        if any(abs(q) > 16 for q in charges):
            raise ChemistryError(f"{source}:{lineno}: oxidation state out of range (|q| > 16)")
        states[z] = charges
    if not any(states):
        raise ChemistryError(f"{source}: no oxidation states found (expected lines 'Fe 2 3')")
    return tuple(states)


@cache
def load_oxidation_set(name_or_path: str = DEFAULT_SET) -> OxidationSet:
    """Load a named set (``smact14``, ``icsd16``, ``icsd24``, ``pymatgen_sp``, ``wiki``) or a
    user file in SMACT's format (one line per element: symbol then integer states)."""
    if name_or_path in NAMED_SETS:
        path = smact_data_file(NAMED_SETS[name_or_path])
        name = name_or_path
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ChemistryError(
                f"unknown oxidation set {name_or_path!r}: use one of "
                f"{', '.join(NAMED_SETS)} or a path to a table file"
            )
        name = path.stem
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ChemistryError(f"{path}: oxidation-state table is not UTF-8 text") from None
    return OxidationSet(name, hashlib.sha256(raw).hexdigest(), _parse(text, str(path)))
