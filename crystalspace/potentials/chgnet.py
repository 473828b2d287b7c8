"""CHGNet 0.3.0 (weights ship with the ``chgnet`` wheel, offline) as a provider, registered as
``chgnet``: the only place crystalspace constructs CHGNet. Forces and stress through CHGNet's own
ASE calculator; energies of many structures through CHGNet's batched prediction."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalspace.potentials.ase import AseCalculatorProvider
from crystalspace.potentials.base import register_provider

if TYPE_CHECKING:
    from ase import Atoms
    from ase.calculators.calculator import Calculator

INFO = {"symmetry": "E(3)-invariant", "parameters": 412525, "epochs": "pretrained (v0.3.0)"}


def chgnet_calculator(device: str = "cpu") -> Calculator:
    """CHGNet's ASE calculator (energy, forces, stress in eV/Å³) with the pretrained model, quietly."""
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    with contextlib.redirect_stdout(io.StringIO()):  # it announces its device
        return CHGNetCalculator(CHGNet.load(use_device=device, verbose=False), use_device=device)


class CHGNetProvider(AseCalculatorProvider):
    """CHGNet as a provider; :meth:`energies` is its batched energy path for many structures."""

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        super().__init__(chgnet_calculator(device), name="chgnet-0.3.0")
        self.model: Any = self.calculator.model  # type: ignore[attr-defined]
        self.batch_size = batch_size

    def energies(self, structures: Sequence[Atoms]) -> np.ndarray:
        """Total energies (eV) of structures of any composition, ``batch_size`` graphs at a time."""
        from crystalspace.atoms.io import atoms_to_structure

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            preds = self.model.predict_structure(
                [atoms_to_structure(a) for a in structures], task="e", batch_size=self.batch_size
            )
        preds = preds if isinstance(preds, list) else [preds]
        return np.array([float(p["e"]) * len(a) for p, a in zip(preds, structures, strict=True)])


register_provider("chgnet", CHGNetProvider, INFO)
