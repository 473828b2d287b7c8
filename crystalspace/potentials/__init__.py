"""Interatomic potentials behind one interface (torch-sim's layout: one adapter file per model).

- :mod:`~crystalspace.potentials.base`: the batched :class:`ForceProvider` protocol, its optional
  stress and batched-energy capabilities, and the name registry.
- one adapter file per model, each registering its name: :mod:`~crystalspace.potentials.pair`
  (``pair``), :mod:`~crystalspace.potentials.chgnet` (``chgnet``), :mod:`~crystalspace.potentials.sevennet`
  (``sevennet``, optional extra); :mod:`~crystalspace.potentials.mlff` serves the project's saved
  models by name or path. A new external model is one more file here plus its import below; a
  user's own ASE calculator is one :func:`register_provider` call around :class:`AseCalculatorProvider`.
- :mod:`~crystalspace.potentials.ase`: any ASE calculator as a provider, and the one ASE
  calculator over any provider.
- :mod:`~crystalspace.potentials.relax`: the one relaxer (FIRE or BFGS, positions and cell).
"""

from crystalspace.potentials import chgnet, pair, sevennet  # noqa: F401  (adapters register their names)
from crystalspace.potentials.ase import AseCalculatorProvider, ProviderCalculator, as_calculator, as_provider
from crystalspace.potentials.base import (
    ForceProvider,
    ForceProviderError,
    check_provider,
    get_provider,
    provider_info,
    register_provider,
    structure_energies,
)
from crystalspace.potentials.relax import Relaxed, Relaxer

__all__ = [
    "AseCalculatorProvider",
    "ForceProvider",
    "ForceProviderError",
    "ProviderCalculator",
    "Relaxed",
    "Relaxer",
    "as_calculator",
    "as_provider",
    "check_provider",
    "get_provider",
    "provider_info",
    "register_provider",
    "structure_energies",
]
