"""ASE in both directions: any ASE calculator as a provider, and the one ASE calculator over any
provider (after matgl's ``PESCalculator``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from crystalspace.potentials.base import ForceProvider, batch_of, evaluate, get_provider, has_stress


class AseCalculatorProvider:
    """Adapter: any ASE calculator (e.g. CHGNet's) as a provider; stress if the calculator has it.

    Loops over the replicas (ASE calculators see one structure at a time), so it is for users and
    for reference results, not for speed.
    """

    def __init__(self, calculator: Calculator, name: str | None = None) -> None:
        self.calculator = calculator
        self.has_stress = "stress" in calculator.implemented_properties
        self.name = name or type(calculator).__name__

    def __call__(
        self, numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor, stress: bool = False
    ) -> tuple[torch.Tensor, ...]:
        z = numbers.detach().cpu().numpy()
        out: list[list[np.ndarray]] = [[], [], []]
        for pos, box in zip(positions.detach().cpu().numpy(), cell.detach().cpu().numpy(), strict=True):
            atoms = Atoms(numbers=z, positions=pos, cell=box, pbc=True)
            atoms.calc = self.calculator
            out[0].append(np.asarray(atoms.get_potential_energy()))
            out[1].append(atoms.get_forces())
            if stress:
                out[2].append(atoms.get_stress(voigt=False))
        as_tensor = lambda x: torch.as_tensor(np.asarray(x), dtype=positions.dtype, device=positions.device)  # noqa: E731
        return tuple(as_tensor(x) for x in out[: 3 if stress else 2])


class ProviderCalculator(Calculator):
    """The ASE calculator of any force provider: energy, forces and, if the provider has it, stress.

    ``provider`` is a provider object, a name or saved-model path for :func:`get_provider`, or a
    :class:`~crystalspace.mlff.potential.Potential` (anything with ``batched``).
    """

    def __init__(self, provider: Any, device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.provider = as_provider(provider, device)
        stress = ["stress"] if has_stress(self.provider) else []
        self.implemented_properties = ["energy", "free_energy", "forces", *stress]

    def calculate(
        self, atoms: Any = None, properties: Any = ("energy",), system_changes: Any = all_changes
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        stress = "stress" in properties and has_stress(self.provider)
        e, f, s = evaluate(self.provider, *batch_of(self.atoms), stress)
        energy = float(e[0])
        self.results = {"energy": energy, "free_energy": energy, "forces": f[0].cpu().double().numpy()}
        if s is not None:
            self.results["stress"] = full_3x3_to_voigt_6_stress(s[0].cpu().double().numpy())


def as_provider(provider: Any, device: str = "cpu") -> ForceProvider:
    """A provider from a provider, a name or path (:func:`get_provider`) or a ``Potential``."""
    if isinstance(provider, str | os.PathLike):
        return get_provider(str(provider), device)
    if hasattr(provider, "batched"):
        from crystalspace.potentials.mlff import potential_provider

        return potential_provider(provider)
    return provider


def as_calculator(provider: Any, device: str = "cpu") -> Calculator:
    """An ASE calculator for ``provider`` (see :func:`as_provider`): the wrapped calculator itself for
    an :class:`AseCalculatorProvider`, else a :class:`ProviderCalculator`."""
    provider = as_provider(provider, device)
    if isinstance(provider, AseCalculatorProvider):
        return provider.calculator
    return ProviderCalculator(provider)
