"""SevenNet-0 (11 Jul 2024; Park et al., *J. Chem. Theory Comput.* 2024) as a provider, registered as
``sevennet``: a second universal potential beside CHGNet, e.g. a second teacher for reference MD.

The weights ship inside the ``sevenn`` wheel (MIT; optional extra ``crystalspace[sevennet]``) and
are loaded from that file by path: sevenn downloads a checkpoint only for a pretrained *name* whose
file is missing, a path never reaches that code, so nothing here touches the network. Energies,
forces and stress (eV/Å³) through sevenn's own ASE calculator, in float32.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from crystalspace.potentials.ase import AseCalculatorProvider
from crystalspace.potentials.base import ForceProviderError, register_provider

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator

INFO = {"symmetry": "E(3)-equivariant", "parameters": 842623, "epochs": "pretrained (SevenNet-0, 11Jul2024)"}
CHECKPOINT = "pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth"
"""The checkpoint's place inside the installed ``sevenn`` package."""
INSTALL = 'pip install "crystalspace[sevennet]"'


def sevennet_checkpoint() -> Path:
    """The SevenNet-0 checkpoint file of the installed ``sevenn`` wheel, found without importing it
    (cheap: the provider's registry check); a one-line error naming the extra when it is missing."""
    try:
        spec = importlib.util.find_spec("sevenn")
    except (ImportError, ValueError):  # blocked in sys.modules
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ForceProviderError(f"the sevennet provider needs the sevenn package: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / CHECKPOINT
    if not path.is_file():
        raise ForceProviderError(f"the installed sevenn lacks {CHECKPOINT}: {INSTALL}")
    return path


def sevennet_calculator(device: str = "cpu") -> Calculator:
    """sevenn's ASE calculator (energy, forces, stress in eV/Å³) over the shipped SevenNet-0 weights."""
    path = sevennet_checkpoint()
    from sevenn.calculator import SevenNetCalculator

    with warnings.catch_warnings():  # it suggests a GPU tensor-product accelerator
        warnings.simplefilter("ignore")
        return SevenNetCalculator(model=str(path), file_type="checkpoint", device=device)


class SevenNetProvider(AseCalculatorProvider):
    """SevenNet-0 as a provider (through :class:`AseCalculatorProvider`)."""

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(sevennet_calculator(device), name="sevennet-0-11Jul2024")


register_provider("sevennet", SevenNetProvider, INFO, check=sevennet_checkpoint)
