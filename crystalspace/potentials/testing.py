"""The checks every force provider passes, as a mixin: a test utility for users who add a provider.

Not used by the library itself. Subclass :class:`ProviderConformance` in a pytest module, in a class
named ``Test…``, and give it the provider and a structure it can treat::

    from ase.io import read

    from crystalspace.potentials.testing import ProviderConformance

    class TestMyProvider(ProviderConformance):
        def make_provider(self):
            return MyProvider()

        def structure(self):
            return read("Li3PS4.cif")

pytest then runs each ``test_*`` method on jittered float64 copies of the structure: a batch of
replicas equals the replicas one by one, forces are −∇E by central differences, a translation
changes nothing, the stress (when the provider has it) is 1/V ∂E/∂ε by finite differences, and the
provider survives a round trip through the ASE calculator (:class:`ProviderCalculator` →
:class:`AseCalculatorProvider`). ``tests/unit/potentials/test_conformance.py`` runs it for the pair
potential, a small model of the project's zoo and CHGNet.

Tolerances are class attributes; the defaults are for float64 providers. A float32 model (CHGNet)
needs a larger finite-difference step and looser tolerances. This module imports neither pytest nor
anything of the test folder: checks are plain ``assert`` and ``torch.allclose``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from ase import Atoms

from crystalspace.potentials.ase import AseCalculatorProvider, ProviderCalculator
from crystalspace.potentials.base import has_stress, structure_energies

if TYPE_CHECKING:
    from crystalspace.potentials.base import ForceProvider


def jittered(
    atoms: Atoms, replicas: int, scale: float = 0.05, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(numbers, positions [R, N, 3], cell [R, 3, 3]) float64 tensors of jittered copies."""
    rng = np.random.default_rng(seed)
    pos = atoms.positions[None] + scale * rng.standard_normal((replicas, len(atoms), 3))
    cell = np.repeat(np.asarray(atoms.cell[:])[None], replicas, axis=0)
    return torch.as_tensor(atoms.numbers), torch.as_tensor(pos), torch.as_tensor(cell)


def energy(provider: Any, z: torch.Tensor, pos: torch.Tensor, cell: torch.Tensor) -> float:
    """The energy (eV) of the first replica."""
    return float(provider(z, pos, cell)[0][0])


class ProviderConformance:
    """Mixin of the checks of one force provider (see the module docstring).

    Hooks: :meth:`make_provider` and :meth:`structure` (both required). Tolerances are class
    attributes; the defaults are those the float64 providers (pair, the project's models) meet.
    """

    step = 1e-5
    """Finite-difference step (Å for positions, dimensionless for strain)."""
    batch_atol = 1e-10
    """Batched against one-by-one energies (eV) and forces (eV/Å)."""
    fd_force_atol = 1e-6
    """Forces against −∂E/∂r by central differences (eV/Å)."""
    min_force = 1e-3
    """The largest force component of the jittered structure must exceed this (a non-trivial check)."""
    translation_energy_atol = 1e-8
    """Energy change (eV) under a translation of every atom."""
    translation_force_atol = 1e-8
    """Force change (eV/Å) under that translation."""
    fd_stress_atol = 1e-7
    """Stress against 1/V ∂E/∂ε by central differences (eV/Å³)."""
    round_trip_atol = 1e-10
    """Provider → ASE calculator → provider against the provider itself (eV, eV/Å, eV/Å³)."""
    fd_components: tuple[tuple[int, int], ...] = ((0, 0), (7, 2), (12, 1))
    """(atom, axis) pairs checked by finite differences (indices into :meth:`structure`)."""
    stress_components: tuple[tuple[int, int], ...] = ((0, 0), (2, 2), (0, 1), (1, 2))
    """Stress components checked by finite differences."""

    # ------------------------------------------------------------------------------------------ hooks
    def make_provider(self) -> ForceProvider:
        """The provider under test. Called once per check: cache it if it is slow to build."""
        raise NotImplementedError("a ProviderConformance subclass defines make_provider()")

    def structure(self) -> Atoms:
        """A periodic structure the provider can treat (it needs the atoms of :attr:`fd_components`)."""
        raise NotImplementedError("a ProviderConformance subclass defines structure()")

    # ----------------------------------------------------------------------------------------- checks
    def test_batch_equals_one_by_one(self) -> None:
        provider, atoms = self.make_provider(), self.structure()
        z, pos, cell = jittered(atoms, 3)
        e, f = provider(z, pos, cell)
        assert e.shape == (3,)
        assert f.shape == (3, len(atoms), 3)
        for r in range(3):
            e1, f1 = provider(z, pos[r : r + 1], cell[r : r + 1])
            assert abs(float(e1[0]) - float(e[r])) <= self.batch_atol, (r, float(e1[0]), float(e[r]))
            assert torch.allclose(f1[0], f[r], atol=self.batch_atol)

    def test_forces_are_minus_energy_gradient(self) -> None:
        provider, atoms = self.make_provider(), self.structure()
        z, pos, cell = jittered(atoms, 1, seed=1)
        _, f = provider(z, pos, cell)
        assert f.abs().max() > self.min_force
        h = self.step
        for atom, axis in self.fd_components:
            plus, minus = pos.clone(), pos.clone()
            plus[0, atom, axis] += h
            minus[0, atom, axis] -= h
            fd = -(energy(provider, z, plus, cell) - energy(provider, z, minus, cell)) / (2 * h)
            got = float(f[0, atom, axis])
            assert abs(fd - got) <= self.fd_force_atol, (atom, axis, fd, got)

    def test_translation_invariance(self) -> None:
        provider, atoms = self.make_provider(), self.structure()
        z, pos, cell = jittered(atoms, 1, seed=2)
        moved = Atoms(
            numbers=atoms.numbers,
            positions=pos[0].numpy() + np.array([1.3, -0.7, 2.9]),
            cell=atoms.cell,
            pbc=True,
        )
        moved.wrap()
        e0, f0 = provider(z, pos, cell)
        e1, f1 = provider(z, torch.as_tensor(moved.positions)[None], cell)
        assert abs(float(e1[0]) - float(e0[0])) <= self.translation_energy_atol, (float(e1[0]), float(e0[0]))
        assert torch.allclose(f1, f0, atol=self.translation_force_atol)

    def test_stress_is_strain_derivative(self) -> None:
        provider, atoms = self.make_provider(), self.structure()
        assert has_stress(provider)
        z, pos, cell = jittered(atoms, 1, seed=3)
        sigma = provider(z, pos, cell, stress=True)[2][0]  # type: ignore[call-arg]
        volume = abs(float(torch.linalg.det(cell[0])))
        h = self.step
        for i, j in self.stress_components:
            strain = torch.zeros(3, 3, dtype=torch.float64)
            strain[i, j] += h / 2
            strain[j, i] += h / 2
            deform = [torch.eye(3, dtype=torch.float64) + s * strain for s in (1, -1)]
            e_plus, e_minus = (energy(provider, z, pos @ d, cell @ d) for d in deform)
            fd = (e_plus - e_minus) / (2 * h * volume)
            assert abs(fd - float(sigma[i, j])) <= self.fd_stress_atol, (i, j, fd, float(sigma[i, j]))

    def test_ase_calculator_round_trip(self) -> None:
        """provider → ASE calculator → provider gives the same energies, forces and stress."""
        provider, atoms = self.make_provider(), self.structure()
        back = AseCalculatorProvider(ProviderCalculator(provider))
        z, pos, cell = jittered(atoms, 2, seed=4)
        direct, round_trip = provider(z, pos, cell, stress=True), back(z, pos, cell, stress=True)  # type: ignore[call-arg]
        for a, b in zip(direct, round_trip, strict=True):
            assert torch.allclose(a.double(), b, atol=self.round_trip_atol)
        one = Atoms(numbers=atoms.numbers, positions=pos[0].numpy(), cell=cell[0].numpy(), pbc=True)
        got, want = structure_energies(provider, [one])[0], float(direct[0][0])
        assert abs(got - want) <= self.round_trip_atol, (got, want)
