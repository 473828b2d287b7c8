"""The project's trained force fields (:mod:`crystalspace.mlff`) as providers: a saved model by
registry name or path, or an in-memory :class:`~crystalspace.mlff.potential.Potential`, served by
:meth:`Potential.batched <crystalspace.mlff.potential.Potential.batched>` (stress for conservative models)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from crystalspace.mlff.potential import Potential

MD_SKIN = 1.0
"""Verlet skin (Å) of saved-model providers: neighbour lists are reused until an atom moved skin/2."""


class PotentialProvider:
    """A :class:`~crystalspace.mlff.potential.Potential` as a provider (its ``batched``)."""

    def __init__(self, potential: Potential, name: str = "") -> None:
        self.potential = potential
        self.has_stress = potential.conservative
        self.name = name or potential.model.arch

    def __call__(
        self, numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor, stress: bool = False
    ) -> tuple[torch.Tensor, ...]:
        return self.potential.batched(numbers, positions, cell, stress=stress)


def potential_provider(potential: Potential, name: str = "") -> PotentialProvider:
    """The provider of an in-memory ``Potential`` (e.g. one being trained or tuned)."""
    return PotentialProvider(potential, name)


def load_provider(name: str, device: str = "cpu", skin: float = MD_SKIN) -> PotentialProvider:
    """A saved model (registry directory, or entry name under ``$CRYSTALSPACE_REGISTRY``) with a
    Verlet list of ``skin`` Å (0 searches every call); raises ``RegistryError`` if there is none."""
    from crystalspace.mlff.potential import load_potential

    potential = load_potential(name, device=device)
    potential.skin = float(skin)
    return PotentialProvider(potential, PurePosixPath(str(name).rstrip("/")).name)


def model_info(name: str) -> dict[str, Any]:
    """The study's model-table row of a saved model: architecture, symmetry, parameters, epochs."""
    from crystalspace.mlff.potential import load_potential
    from crystalspace.registry import load_entry

    entry = load_entry(name)
    model = load_potential(name).model
    return {
        "model": entry.name,
        "arch": model.arch,
        "symmetry": model.symmetry,
        "conservative": model.conservative,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": entry.metrics.get("epochs_run"),
        "val_force_mae": entry.metrics.get("val_force_mae"),
    }
