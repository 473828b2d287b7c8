"""Energies behind the generator: the force field, elemental references and formation energies.

The force field is a :class:`crystalspace.potentials.Relaxer` (single-point energies per atom and
FIRE relaxations with the cell) over any provider: CHGNet 0.3.0 by default (weights ship with
``chgnet``, loads offline), or ``pair``, or a saved model of the project by name or path.

Elemental references (the stand-in for MP's elemental entries): V in its MP ground state (bcc,
mp-146, a ≈ 2.98 Å, cell relaxed) and O as an O₂ molecule in a 10 Å box (MP's O reference,
mp-12957, is a molecular O₂ crystal); both relaxed with the same force field.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from crystalspace.storage import atomic_path

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalspace.potentials import Relaxer

log = logging.getLogger(__name__)

#: MP elemental reference energies (eV/atom, GGA, matbench-discovery 2023-02-07), for comparison.
MP_ELEMENT_REFERENCE = {"V": -9.08390607, "O": -39.57350969 / 8}


def load_energy_model(name: str = "chgnet", device: str = "cpu") -> Relaxer:
    """The force field by provider name (``chgnet``, ``pair``, a saved model's name or path)."""
    from crystalspace.potentials import Relaxer

    return Relaxer("chgnet" if name.lower() in ("chgnet", "chgnet-0.3.0") else name, device=device)


def reference_structures() -> dict[str, Structure]:
    """MP-like elemental ground states: bcc V and an O₂ molecule in a box."""
    from pymatgen.core import Lattice, Structure

    return {
        "V": Structure(Lattice.cubic(2.98), ["V", "V"], np.array([[0, 0, 0], [0.5, 0.5, 0.5]])),
        "O": Structure(Lattice.cubic(10.0), ["O", "O"], np.array([[0, 0, 0], [0.1208, 0.0, 0.0]])),
    }


def elemental_references(model: Relaxer, cache: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Relaxed elemental reference energies (eV/atom) under ``model``; cached as JSON."""
    if cache is not None and Path(cache).exists():
        data = json.loads(Path(cache).read_text())
        if data.get("model") == model.name:
            return {k: float(v) for k, v in data["energies"].items()}
    out = {}
    for el, s in reference_structures().items():
        if el == "O":  # a molecule: relax the bond only (the box is a vacuum)
            out[el] = _relax_dimer(model, s)
        else:
            out[el] = model.relax([s], steps=200, fmax=0.02)[0].energy_per_atom
    if cache is not None:
        with atomic_path(cache) as tmp:
            tmp.write_text(
                json.dumps({"model": model.name, "energies": out, "mp_gga": MP_ELEMENT_REFERENCE}, indent=1)
            )
    log.info("elemental references (%s): %s", model.name, out)
    return out


def _relax_dimer(model: Relaxer, s: Structure) -> float:
    """Lowest energy per atom of an O₂ dimer over a bond-length scan (1.10..1.40 Å)."""
    structures = []
    for d in np.linspace(1.10, 1.40, 31):
        t = s.copy()
        t.replace(1, "O", [d / 10.0, 0, 0])
        structures.append(t)
    return float(model.energies(structures).min())


def formation_energy(
    composition_counts: dict[str, float], e_per_atom: float, refs: dict[str, float]
) -> float:
    """Formation energy per atom (eV/atom) from the total energy per atom and elemental references."""
    n = sum(composition_counts.values())
    return e_per_atom - sum(c * refs[el] for el, c in composition_counts.items()) / n
