"""The ASE calculator of a saved (or in-memory) force field: energy, forces and stress."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from crystalspace.mlff.potential import Potential, load_potential


class MLFFCalculator(Calculator):
    """ASE calculator around a :class:`~crystalspace.mlff.potential.Potential`.

    ``MLFFCalculator("runs/registry/schnet-lgps-v1")`` loads from the registry; a ``Potential`` can be
    passed directly. Stress (eV/Å³, ASE convention) is available for conservative models only.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]  # noqa: RUF012

    def __init__(self, model: Potential | str | os.PathLike[str], device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.potential = model if isinstance(model, Potential) else load_potential(model, device)
        self.device = device

    def calculate(
        self, atoms: Any = None, properties: Any = ("energy",), system_changes: Any = all_changes
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        from ase.stress import full_3x3_to_voigt_6_stress

        a = self.atoms
        stress = "stress" in properties and self.potential.conservative
        out = (
            self.potential.batched(a.numbers, a.positions[None], np.asarray(a.cell[:])[None], stress=True)
            if stress
            else self.potential.batched(a.numbers, a.positions[None], np.asarray(a.cell[:])[None])
        )
        energy = float(out[0][0])
        self.results = {"energy": energy, "free_energy": energy, "forces": out[1][0].cpu().double().numpy()}
        if stress:
            self.results["stress"] = full_3x3_to_voigt_6_stress(out[2][0].cpu().double().numpy())  # type: ignore[misc]
