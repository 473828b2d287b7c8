"""The force field behind the generator: energies, relaxations and elemental references.

:class:`EnergyModel` is the small interface the pipeline needs (energy per atom, relaxation); the
default implementation wraps CHGNet 0.3.0 (weights ship with ``chgnet``, loads offline). A model
from the force-field registry can be plugged in by implementing the same two methods.

Elemental references (the stand-in for MP's elemental entries): V in its MP ground state (bcc,
mp-146, a ≈ 2.98 Å, cell relaxed) and O as an O₂ molecule in a 10 Å box (MP's O reference,
mp-12957, is a molecular O₂ crystal); both relaxed with the same force field.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

log = logging.getLogger(__name__)

#: MP elemental reference energies (eV/atom, GGA, matbench-discovery 2023-02-07), for comparison.
MP_ELEMENT_REFERENCE = {"V": -9.08390607, "O": -39.57350969 / 8}


class EnergyModel(Protocol):
    """What the generator needs from a force field."""

    name: str

    def energies(self, structures: Sequence[Structure]) -> np.ndarray:
        """Energy per atom (eV/atom) of each structure, single point."""
        ...

    def relax(self, structure: Structure, steps: int, fmax: float = 0.1) -> tuple[Structure, float, int]:
        """Relaxed structure (positions and cell), its energy per atom, and force calls used."""
        ...


class CHGNetModel:
    """CHGNet (pretrained 0.3.0) as an :class:`EnergyModel`."""

    name = "chgnet-0.3.0"

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        from chgnet.model import CHGNet

        self.model = CHGNet.load(use_device=device, verbose=False)
        self.device, self.batch_size = device, batch_size
        self._optimizer: Any = None

    def energies(self, structures: Sequence[Structure]) -> np.ndarray:
        if not structures:
            return np.zeros(0)
        preds = self.model.predict_structure(list(structures), task="e", batch_size=self.batch_size)
        preds = preds if isinstance(preds, list) else [preds]
        return np.array([float(p["e"]) for p in preds])

    def relax(self, structure: Structure, steps: int, fmax: float = 0.1) -> tuple[Structure, float, int]:
        import warnings

        from chgnet.model import StructOptimizer

        if self._optimizer is None:  # once: it announces its device on every construction
            self._optimizer = StructOptimizer(model=self.model, use_device=self.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = self._optimizer.relax(structure, fmax=fmax, steps=steps, relax_cell=True, verbose=False)
        final: Structure = res["final_structure"]
        traj: Any = res["trajectory"]
        e = float(traj.energies[-1]) / len(final)
        return final, e, len(traj.energies)


def load_energy_model(name: str = "chgnet", device: str = "cpu") -> EnergyModel:
    """The energy model by name (``chgnet``; registry models plug in here)."""
    from crystalspace.gen.errors import GenError

    if name.lower() in ("chgnet", "chgnet-0.3.0"):
        return CHGNetModel(device=device)
    raise GenError(f"unknown energy model {name!r} (available: chgnet)")


def reference_structures() -> dict[str, Structure]:
    """MP-like elemental ground states: bcc V and an O₂ molecule in a box."""
    from pymatgen.core import Lattice, Structure

    return {
        "V": Structure(Lattice.cubic(2.98), ["V", "V"], np.array([[0, 0, 0], [0.5, 0.5, 0.5]])),
        "O": Structure(Lattice.cubic(10.0), ["O", "O"], np.array([[0, 0, 0], [0.1208, 0.0, 0.0]])),
    }


def elemental_references(model: EnergyModel, cache: str | os.PathLike[str] | None = None) -> dict[str, float]:
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
            out[el] = model.relax(s, steps=200, fmax=0.02)[1]
    if cache is not None:
        tmp = Path(f"{cache}.tmp")
        tmp.write_text(
            json.dumps({"model": model.name, "energies": out, "mp_gga": MP_ELEMENT_REFERENCE}, indent=1)
        )
        tmp.replace(cache)
    log.info("elemental references (%s): %s", model.name, out)
    return out


def _relax_dimer(model: EnergyModel, s: Structure) -> float:
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
