"""Every provider behaves the same: the provider conformance suite that ships with the library
(:class:`crystalspace.potentials.testing.ProviderConformance`) for the pair potential, a small model
of the project's zoo (float64) and CHGNet, the external model adapter (float32: looser tolerances)."""

from __future__ import annotations

import functools

import pytest
import torch
from _paths import DATA
from ase import Atoms
from ase.io import read

from crystalspace.mlff.models import build_model
from crystalspace.mlff.potential import Potential
from crystalspace.potentials import get_provider
from crystalspace.potentials.base import ForceProvider
from crystalspace.potentials.mlff import potential_provider
from crystalspace.potentials.testing import ProviderConformance

CIF = DATA / "mlff_subset" / "Li3PS4_chgnet_relaxed.cif"


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(1)


@functools.cache
def li3ps4() -> Atoms:
    return read(CIF)


def tiny_model() -> Potential:
    """An untrained SchNet of the project's zoo, float64, with non-trivial reference energies."""
    torch.manual_seed(0)
    model = build_model("schnet", cutoff=4.5, hidden=16, layers=2).double()
    with torch.no_grad():
        model.atom_ref.uniform_(-1, 1)
    return Potential(model).eval()


@functools.cache  # one provider per module, as the checks share it (CHGNet loads in seconds)
def provider(name: str) -> ForceProvider:
    factories = {
        "pair": lambda: get_provider("pair"),
        "schnet": lambda: potential_provider(tiny_model()),
        "chgnet": lambda: get_provider("chgnet"),
    }
    return factories[name]()


class Li3PS4Conformance(ProviderConformance):
    """The suite on the CHGNet-relaxed Li3PS4 cell of tests/data."""

    name = ""

    def make_provider(self) -> ForceProvider:
        return provider(self.name)

    def structure(self) -> Atoms:
        return li3ps4()


class TestPair(Li3PS4Conformance):
    name = "pair"


class TestSchNet(Li3PS4Conformance):
    name = "schnet"


class TestCHGNet(Li3PS4Conformance):
    """CHGNet computes in float32: the energy of the 16-atom cell (-74 eV) resolves to ~8e-6 eV, so
    finite differences take a 3e-3 step and allow a few float32 ulps (seen: force errors up to
    1.5e-3 eV/Å on forces up to 1 eV/Å, stress up to 3e-5 on 5e-3 eV/Å³; batches and the ASE round
    trip are exact)."""

    name = "chgnet"
    step = 3e-3
    fd_force_atol = 5e-3
    fd_stress_atol = 1e-4
    translation_energy_atol = 1e-4
    translation_force_atol = 1e-4
