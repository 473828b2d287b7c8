"""The conformance suite every force field passes, as a mixin: a test utility for users who add a model.

Not used by the library itself. Subclass :class:`ForceFieldConformance` in a pytest module, in a
class named ``Test…``, and give it the model (nequip ships its model tests the same way)::

    from crystalspace.mlff.testing import ForceFieldConformance

    class TestMyModel(ForceFieldConformance):
        def make_model(self):
            return MyModel(cutoff=4.5, hidden=16, layers=2)

pytest then runs each ``test_*`` method on the model, wrapped in
:class:`~crystalspace.mlff.potential.Potential` in float64: the energy is invariant under rotation,
translation and permutation of the atoms and the forces are equivariant; a batch equals its
structures one by one; a supercell is extensive (cells smaller than the cutoff included); the energy
is smooth as a neighbour crosses the cutoff; and, for conservative models only, forces are −∇E and
the stress is 1/V ∂E/∂ε by finite differences (a direct-force model, ``conservative = False``, skips
those two; a model that sees directions in the laboratory frame, ``rotation_invariant = False``,
skips the rotation check). ``tests/unit/mlff/test_models.py`` runs it for every registered
architecture.

The structures are Li-P-S cells; override :meth:`ForceFieldConformance.structures` and
:meth:`ForceFieldConformance.supercells` (and the tolerances, class attributes) for a model that
needs others. This module imports neither pytest nor anything of the test folder: checks are plain
``assert`` and :mod:`numpy.testing`, and a check that does not apply is skipped (``pytest.skip``,
imported only when it is needed; :class:`unittest.SkipTest` without pytest).
"""

from __future__ import annotations

import unittest
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import torch

from crystalspace.atoms.graph import collate, make_graph
from crystalspace.mlff.potential import Potential

if TYPE_CHECKING:
    from ase import Atoms

    from crystalspace.mlff.models import ForceField


def li_p_s(seed: int = 1) -> Atoms:
    """A small periodic Li-P-S cell (12 atoms, triclinic) with jittered positions."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    cell = np.array([[6.2, 0.0, 0.0], [0.4, 5.9, 0.0], [-0.3, 0.5, 6.4]])
    frac = (
        rng.permutation(np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3))[:12] / 3
    )
    frac = frac + rng.normal(0, 0.03, frac.shape)
    numbers = [3] * 6 + [15] * 2 + [16] * 4
    return Atoms(numbers=numbers, scaled_positions=frac, cell=cell, pbc=True)


def predict(
    pot: Potential, structures: list[Atoms], stress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Energies (B,), forces (N, 3) of all atoms and, with ``stress``, stresses (B, 3, 3) of
    ``structures`` as one batch, with exact float64 positions and cells."""
    graphs = []
    for a in structures:
        g = make_graph(a.numbers, a.positions, a.cell[:], True, pot.cutoff)
        g.pos, g.cell, g.shift = g.pos.double(), g.cell.double(), g.shift.double()
        g.pos = torch.as_tensor(a.positions)  # exact float64 positions
        g.cell = torch.as_tensor(np.asarray(a.cell[:])).unsqueeze(0)
        graphs.append(g)
    out = pot(collate(graphs), forces=True, stress=stress)
    assert out.forces is not None
    f = out.forces.detach().numpy()
    return out.energy.detach().numpy(), f, (None if out.stress is None else out.stress.detach().numpy())


def random_rotation(seed: int = 3) -> np.ndarray:
    """A fixed pseudo-random orthogonal 3×3 matrix (the rotation of the invariance checks)."""
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0].numpy()


def rotated(atoms: Atoms, rot: np.ndarray) -> Atoms:
    """A copy of ``atoms`` with positions and cell vectors rotated by ``rot``."""
    b = atoms.copy()
    b.set_cell(atoms.cell[:] @ rot.T, scale_atoms=False)
    b.positions = atoms.positions @ rot.T
    return b


def skip(reason: str) -> NoReturn:
    """Skip the running check: ``pytest.skip`` under pytest (imported only then), else
    :class:`unittest.SkipTest` (which pytest and unittest both report as a skip)."""
    try:
        import pytest
    except ImportError:
        raise unittest.SkipTest(reason) from None
    pytest.skip(reason)


class ForceFieldConformance:
    """Mixin of the conformance checks of one force field (see the module docstring).

    Hooks: :meth:`make_model` (required), :meth:`structures`, :meth:`supercells`. Tolerances are
    class attributes; the defaults are those every architecture of the zoo meets in float64.
    """

    energy_rtol = 1e-9
    """Relative tolerance of energies that must not change (rotation, translation, permutation, supercell)."""
    energy_atol = 1e-8
    """Absolute tolerance (eV) of those energies."""
    force_atol = 1e-8
    """Absolute tolerance (eV/Å) of forces under the same operations."""
    batch_rtol = 1e-10
    """Relative tolerance of batched against one-by-one energies."""
    batch_atol = 1e-9
    """Absolute tolerance (eV, eV/Å) of batched against one-by-one energies and forces."""
    fd_step = 3e-6
    """Finite-difference step (Å for positions, dimensionless for strain): central differences err by
    ∝ step², which must stay far below the tolerances for a sharply curved untrained model (float64
    round-off stays below 1e-9 at this step)."""
    fd_force_tol = 1e-6
    """Forces against −∂E/∂r by central differences: ``|fd − f| < fd_force_tol · max(1, |fd|)``."""
    fd_stress_tol = 1e-7
    """Stress against 1/V ∂E/∂ε by central differences (eV/Å³)."""
    fd_components: tuple[tuple[int, int], ...] = ((0, 0), (6, 1), (11, 2))
    """(atom, axis) pairs of the first structure checked by finite differences."""
    stress_components: tuple[tuple[int, int], ...] = ((0, 0), (1, 2))
    """Stress components checked by finite differences."""
    dimer_symbols = "LiSP"
    """The moving pair and a fixed spectator of the cutoff-smoothness check."""

    # ------------------------------------------------------------------------------------------ hooks
    def make_model(self) -> ForceField:
        """The model under test (cast to float64 and put in eval mode by the checks).

        Called once per check: cache it (e.g. ``functools.cache``) if it is slow to build.
        """
        raise NotImplementedError("a ForceFieldConformance subclass defines make_model()")

    def structures(self) -> list[Atoms]:
        """Periodic cells for the checks; the first one is used by the invariance and derivative
        checks (it needs the atoms named in :attr:`fd_components`), all of them as one batch."""
        from ase.build import bulk

        return [li_p_s(1), bulk("Li", "bcc", a=3.45, cubic=True), li_p_s(2)]

    def supercells(self) -> list[tuple[Atoms, tuple[int, int, int]]]:
        """(cell, repetitions) pairs of the extensivity check, one cell far smaller than the cutoff."""
        from ase.build import bulk

        small = bulk("Li", "bcc", a=3.45)  # 1 atom, cell far smaller than the 4.5 Å cutoff
        small.positions += 0.05
        two = bulk("LiP", "rocksalt", a=4.0) * (1, 1, 1)
        return [(small, (2, 2, 3)), (two, (2, 1, 1)), (self.structures()[0], (1, 2, 1))]

    # ---------------------------------------------------------------------------------------- helpers
    def potential(self) -> Potential:
        """The model under test as a float64 :class:`Potential` in eval mode."""
        return Potential(self.make_model().double()).eval()

    def _conservative(self, pot: Potential) -> Potential:
        if not pot.conservative:
            skip(f"{pot.model.arch}: a direct-force model, its forces are not −∇E")
        return pot

    def _rotation_invariant(self, pot: Potential) -> Potential:
        if not pot.model.rotation_invariant:
            skip(f"{pot.model.arch}: sees directions in the laboratory frame, not rotation invariant")
        return pot

    # ----------------------------------------------------------------------------------------- checks
    def test_rotation_invariance_and_force_equivariance(self) -> None:
        pot, a = self._rotation_invariant(self.potential()), self.structures()[0]
        e0, f0, _ = predict(pot, [a])
        rot = random_rotation()
        e1, f1, _ = predict(pot, [rotated(a, rot)])
        assert np.isfinite(e0).all()
        assert np.abs(f0).max() > 1e-6
        np.testing.assert_allclose(e1, e0, rtol=self.energy_rtol, atol=self.energy_atol)
        np.testing.assert_allclose(f1, f0 @ rot.T, atol=self.force_atol)

    def test_translation_invariance(self) -> None:
        pot, a = self.potential(), self.structures()[0]
        e0, f0, _ = predict(pot, [a])
        c = a.copy()
        c.positions += np.array([1.3, -0.7, 2.9])
        c.wrap()
        e2, f2, _ = predict(pot, [c])
        assert np.isfinite(e0).all()
        assert np.abs(f0).max() > 1e-6
        np.testing.assert_allclose(e2, e0, rtol=self.energy_rtol, atol=self.energy_atol)
        np.testing.assert_allclose(f2, f0, atol=self.force_atol)

    def test_permutation(self) -> None:
        pot, a = self.potential(), self.structures()[0]
        perm = np.random.default_rng(0).permutation(len(a))
        e0, f0, _ = predict(pot, [a])
        e1, f1, _ = predict(pot, [a[perm]])
        np.testing.assert_allclose(e1, e0, rtol=self.energy_rtol, atol=self.energy_atol)
        np.testing.assert_allclose(f1, f0[perm], atol=self.force_atol)

    def test_forces_are_minus_gradient(self) -> None:
        pot, a = self._conservative(self.potential()), self.structures()[0]
        _e0, f0, _ = predict(pot, [a])
        h = self.fd_step
        for atom, k in self.fd_components:
            plus, minus = a.copy(), a.copy()
            plus.positions[atom, k] += h
            minus.positions[atom, k] -= h
            fd = -(predict(pot, [plus])[0][0] - predict(pot, [minus])[0][0]) / (2 * h)
            assert abs(fd - f0[atom, k]) < self.fd_force_tol * max(1.0, abs(fd)), (atom, k, fd, f0[atom, k])

    def test_stress_is_strain_derivative(self) -> None:
        pot, a = self._conservative(self.potential()), self.structures()[0]
        _, _, s = predict(pot, [a], stress=True)
        assert s is not None
        h = self.fd_step
        for i, j in self.stress_components:
            eps = np.zeros((3, 3))
            eps[i, j] = eps[j, i] = h / (1 if i == j else 2)
            es = []
            for sign in (1, -1):
                b = a.copy()
                b.set_cell(a.cell[:] @ (np.eye(3) + sign * eps), scale_atoms=True)
                es.append(predict(pot, [b])[0][0])
            fd = (es[0] - es[1]) / (2 * h) / a.get_volume()
            assert abs(fd - s[0, i, j]) < self.fd_stress_tol, (i, j, fd, s[0, i, j])

    def test_batch_equals_one_by_one(self) -> None:
        pot = self.potential()
        structures = self.structures()
        eb, fb, _ = predict(pot, structures)
        singles = [predict(pot, [s]) for s in structures]
        np.testing.assert_allclose(
            eb, [e[0] for e, _, _ in singles], rtol=self.batch_rtol, atol=self.batch_atol
        )
        np.testing.assert_allclose(fb, np.concatenate([f for _, f, _ in singles]), atol=self.batch_atol)

    def test_supercell_is_extensive_and_small_cells_work(self) -> None:
        pot = self.potential()
        for cell, reps in self.supercells():
            cell = cell.copy()
            cell.rattle(0.05, seed=1)
            sup = cell * reps
            (e1,), f1, _ = predict(pot, [cell])
            (en,), fn, _ = predict(pot, [sup])
            n = int(np.prod(reps))
            np.testing.assert_allclose(en, n * e1, rtol=self.energy_rtol, atol=self.energy_atol)
            np.testing.assert_allclose(fn, np.tile(f1, (n, 1)), atol=self.force_atol)

    def test_energy_smooth_as_neighbour_crosses_cutoff(self) -> None:
        from ase import Atoms

        pot = self.potential()
        rc = pot.cutoff
        energies = []
        ds = [rc - 2e-3, rc - 1e-3, rc - 1e-6, rc + 1e-6, rc + 1e-3]
        for d in ds:
            # a dimer plus a fixed spectator (beyond rc of the moving atom), in a box that has no images in range
            a = Atoms(
                self.dimer_symbols, positions=[[0, 0, 0], [d, 0, 0], [0, 2.0, 0]], cell=[20, 20, 20], pbc=True
            )
            energies.append(predict(pot, [a])[0][0])
        e = np.array(energies)
        assert abs(e[2] - e[3]) < 1e-8  # continuous at rc
        assert e[3] == e[4]  # flat beyond rc (no more interaction)
        assert abs(e[0] - e[1]) < 1e-4  # and its slope goes to zero
        assert abs(e[1] - e[2]) < abs(e[0] - e[1]) + 1e-10
