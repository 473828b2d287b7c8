"""The one relaxer, over any provider (after matgl's ``Relaxer`` and CHGNet's structure optimiser):
ASE's FIRE (default) or BFGS on the positions and, optionally, the cell (ASE ``FrechetCellFilter``,
which needs a provider with stress)."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalspace.potentials.ase import as_calculator, as_provider
from crystalspace.potentials.base import ForceProviderError, provider_name, structure_energies

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core import Structure

log = logging.getLogger(__name__)

OPTIMIZERS = ("FIRE", "BFGS")


@dataclass(frozen=True)
class Relaxed:
    """One relaxation: final structure, total energy (eV), optimiser steps, whether ``fmax`` was met.

    A relaxation that failed (an exploded cell, a non-finite energy) keeps the input structure with
    energy ``inf``, so it ranks last.
    """

    atoms: Atoms
    energy: float
    steps: int
    converged: bool

    @property
    def structure(self) -> Structure:
        """The final structure as a pymatgen ``Structure``."""
        from crystalspace.atoms.io import atoms_to_structure

        return atoms_to_structure(self.atoms)

    @property
    def energy_per_atom(self) -> float:
        """eV/atom."""
        return self.energy / len(self.atoms)

    @property
    def calls(self) -> int:
        """Force evaluations: one per optimiser step and one for the start."""
        return self.steps + 1


class Relaxer:
    """Relaxes structures with any provider and gives single-point energies per atom.

    ``provider`` is a provider object or a name for :func:`~crystalspace.potentials.get_provider`
    (``chgnet`` by default, ``pair``, a saved model's name or path). ``relax_cell`` needs stress.
    """

    def __init__(
        self,
        provider: Any = "chgnet",
        optimizer: str = "FIRE",
        relax_cell: bool = True,
        fmax: float = 0.1,
        device: str = "cpu",
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ForceProviderError(f"unknown optimizer {optimizer!r} (valid: {', '.join(OPTIMIZERS)})")
        self.provider = as_provider(provider, device)
        self.calculator = as_calculator(self.provider)
        if relax_cell and "stress" not in self.calculator.implemented_properties:
            raise ForceProviderError(f"{self.name} gives no stress: use relax_cell=False")
        self.optimizer, self.relax_cell, self.fmax = optimizer, relax_cell, fmax

    @property
    def name(self) -> str:
        """The provider's name (e.g. ``chgnet-0.3.0``), recorded next to cached results."""
        return provider_name(self.provider)

    def relax(
        self, structures: Sequence[Structure | Atoms], steps: int = 500, fmax: float | None = None
    ) -> list[Relaxed]:
        """Relax each structure for at most ``steps`` optimiser steps to ``fmax`` (eV/Å, default the
        relaxer's); pymatgen or ASE structures in, :class:`Relaxed` out, in order."""
        return [self._relax_one(_atoms(s), steps, self.fmax if fmax is None else fmax) for s in structures]

    def energies(self, structures: Sequence[Structure | Atoms]) -> np.ndarray:
        """Single-point energies per atom (eV/atom), batched where the provider can."""
        atoms = [_atoms(s) for s in structures]
        return structure_energies(self.provider, atoms) / np.array([len(a) for a in atoms], dtype=float)

    def _relax_one(self, atoms: Atoms, steps: int, fmax: float) -> Relaxed:
        from ase.filters import FrechetCellFilter
        from ase.optimize import BFGS, FIRE

        start = atoms.copy()
        atoms.calc = self.calculator
        target: Any = FrechetCellFilter(atoms) if self.relax_cell else atoms
        opt = (FIRE if self.optimizer == "FIRE" else BFGS)(target, logfile=None)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                converged = bool(opt.run(fmax=fmax, steps=steps))
                energy = float(atoms.get_potential_energy())
            if not math.isfinite(energy):
                raise FloatingPointError("non-finite energy")
        except Exception as exc:  # exploded cell etc.: keep the input, rank last
            log.warning(
                "relaxation of %s failed after %d steps: %s", start.get_chemical_formula(), opt.nsteps, exc
            )
            return Relaxed(start, math.inf, opt.nsteps, False)
        atoms.calc = None
        return Relaxed(atoms, energy, opt.nsteps, converged)


def _atoms(structure: Structure | Atoms) -> Atoms:
    """A fresh ASE copy of a pymatgen or ASE structure (the caller's object is never moved)."""
    from ase import Atoms

    from crystalspace.atoms.io import structure_to_atoms

    return structure.copy() if isinstance(structure, Atoms) else structure_to_atoms(structure)
