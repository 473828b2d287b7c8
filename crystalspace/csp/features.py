"""Per-atom element features (12 x 11 matrix) from the ``mendeleev`` package and pymatgen."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Element, Structure

from crystalspace.chem.elements import ChemistryError

FEATURES = (
    "mendeleev_number",
    "unpaired_electrons",
    "first_ionisation_energy",
    "covalent_radius",
    "heat_of_formation",
    "dipole_polarizability",
    "average_ionic_radius",
    "group",
    "period",
    "pauling_en",
    "atomic_number",
)
SOURCE = {
    "mendeleev_number": "mendeleev.element().mendeleev_number",
    "unpaired_electrons": "mendeleev.element().ec.unpaired_electrons()",
    "first_ionisation_energy": "mendeleev.element().ionenergies[1] (eV)",
    "covalent_radius": "mendeleev.element().covalent_radius (pm)",
    "heat_of_formation": "mendeleev.element().heat_of_formation (kJ/mol)",
    "dipole_polarizability": "mendeleev.element().dipole_polarizability (a.u.)",
    "average_ionic_radius": "pymatgen Element.average_ionic_radius (A)",
    "group": "pymatgen Element.group",
    "period": "pymatgen Element.row",
    "pauling_en": "mendeleev.element().en_pauling",
    "atomic_number": "pymatgen Element.Z",
}


def _num(x: object) -> float:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


TABLE_FILE = Path(__file__).with_name("element_features.json")


@functools.lru_cache(maxsize=1)
def _table() -> dict[int, tuple[float, ...]]:
    data = json.loads(TABLE_FILE.read_text())
    return {
        int(z): tuple(float("nan") if v is None else float(v) for v in row)
        for z, row in data["values"].items()
    }


def element_features(z: int) -> tuple[float, ...]:
    """The 11 raw features of element ``z`` (NaN where the source has no value).

    Read from ``element_features.json``, generated once from ``mendeleev`` + pymatgen by
    :func:`_raw_features` (sources in :data:`SOURCE`), so workers need no database queries.
    """
    row = _table().get(z)
    if row is None:
        raise ChemistryError(f"no element features for Z={z}")
    return row


def _raw_features(z: int) -> tuple[float, ...]:
    """Query ``mendeleev`` (SQL, ~1 s per element) and pymatgen for the 11 features of ``z``."""
    from mendeleev import element

    m = element(z)
    p = Element.from_Z(z)
    ie = m.ionenergies.get(1) if m.ionenergies else None
    return (
        _num(m.mendeleev_number),
        _num(m.ec.unpaired_electrons()),
        _num(ie),
        _num(m.covalent_radius),
        _num(m.heat_of_formation),
        _num(m.dipole_polarizability),
        _num(p.average_ionic_radius),
        _num(p.group),
        _num(p.row),
        _num(m.en_pauling),
        float(z),
    )


class Standardiser:
    """Per-feature mean/std over the elements seen in training; NaN -> 0 after scaling."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, zs: list[int]) -> Standardiser:
        x = np.array([element_features(z) for z in sorted(set(zs))])
        return cls(np.nanmean(x, axis=0), np.nanstd(x, axis=0) + 1e-8)

    def __call__(self, zs: list[int]) -> np.ndarray:
        x = (np.array([element_features(z) for z in zs]) - self.mean) / self.std
        return np.nan_to_num(x, nan=0.0)


def species_of(obj: Structure | Composition | str) -> list[int]:
    """Atomic numbers of the cell's atoms, sorted (formula strings give the written cell)."""
    if isinstance(obj, Structure):
        return [s.specie.Z for s in obj]
    comp = Composition(obj) if isinstance(obj, str) else obj
    zs: list[int] = []
    for el, n in comp.items():
        zs += [el.Z] * round(n)
    return sorted(zs)


def encode(zs: list[int], std: Standardiser, max_atoms: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Padded (max_atoms x 11) feature matrix and the atom mask."""
    x = np.zeros((max_atoms, len(FEATURES)), np.float32)
    mask = np.zeros(max_atoms, bool)
    x[: len(zs)] = std(zs)
    mask[: len(zs)] = True
    return x, mask


def composition_vector(zs: list[int]) -> np.ndarray:
    """Composition features for the lattice model: mean/std/min/max of raw features + atom count."""
    x = np.nan_to_num(np.array([element_features(z) for z in zs]), nan=0.0)
    return np.concatenate([x.mean(0), x.std(0), x.min(0), x.max(0), [len(zs), len(set(zs))]])
