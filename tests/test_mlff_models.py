"""Conformance tests, the same for every architecture of the zoo (float64, tiny models, rc 4.5 Å)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from crystalspace.atoms.graph import collate, make_graph
from crystalspace.mlff.models import MODELS, UnknownModelError, build_model
from crystalspace.mlff.potential import Potential

RC = 4.5
ALL = sorted(MODELS)
CONSERVATIVE = [m for m in ALL if MODELS[m].conservative]


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(1)


@functools.cache  # DimeNet++ builds its spherical basis with sympy (seconds): build each model once
def make_potential(name: str, seed: int = 0) -> Potential:
    torch.manual_seed(seed)
    model = build_model(name, cutoff=RC, hidden=16, layers=2).double()
    with torch.no_grad():  # non-trivial reference energies so extensivity is tested too
        model.atom_ref.uniform_(-1, 1)
    return Potential(model).eval()


def li_p_s(seed: int = 1) -> Atoms:
    """A small periodic Li-P-S cell (12 atoms, triclinic) with jittered positions."""
    rng = np.random.default_rng(seed)
    cell = np.array([[6.2, 0.0, 0.0], [0.4, 5.9, 0.0], [-0.3, 0.5, 6.4]])
    frac = (
        rng.permutation(np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3))[:12] / 3
    )
    frac = frac + rng.normal(0, 0.03, frac.shape)
    numbers = [3] * 6 + [15] * 2 + [16] * 4
    return Atoms(numbers=numbers, scaled_positions=frac, cell=cell, pbc=True)


def predict(pot: Potential, structures: list[Atoms], stress: bool = False):
    graphs = []
    for a in structures:
        g = make_graph(a.numbers, a.positions, a.cell[:], True, RC)
        g.pos, g.cell, g.shift = g.pos.double(), g.cell.double(), g.shift.double()
        g.pos = torch.as_tensor(a.positions)  # exact float64 positions
        g.cell = torch.as_tensor(np.asarray(a.cell[:])).unsqueeze(0)
        graphs.append(g)
    out = pot(collate(graphs), forces=True, stress=stress)
    f = out.forces.detach().numpy()
    return out.energy.detach().numpy(), f, (None if out.stress is None else out.stress.detach().numpy())


@pytest.mark.parametrize("name", ALL)
def test_rotation_translation_invariance_and_force_equivariance(name: str) -> None:
    pot, a = make_potential(name), li_p_s()
    e0, f0, _ = predict(pot, [a])
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64))[
        0
    ].numpy()
    b = a.copy()
    b.set_cell(a.cell[:] @ rot.T, scale_atoms=False)
    b.positions = a.positions @ rot.T
    c = a.copy()
    c.positions += np.array([1.3, -0.7, 2.9])
    c.wrap()
    e1, f1, _ = predict(pot, [b])
    e2, f2, _ = predict(pot, [c])
    assert np.isfinite(e0).all()
    assert np.abs(f0).max() > 1e-6
    np.testing.assert_allclose(e1, e0, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(f1, f0 @ rot.T, atol=1e-8)
    np.testing.assert_allclose(e2, e0, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(f2, f0, atol=1e-8)


@pytest.mark.parametrize("name", ALL)
def test_permutation(name: str) -> None:
    pot, a = make_potential(name), li_p_s()
    perm = np.random.default_rng(0).permutation(len(a))
    e0, f0, _ = predict(pot, [a])
    e1, f1, _ = predict(pot, [a[perm]])
    np.testing.assert_allclose(e1, e0, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(f1, f0[perm], atol=1e-8)


@pytest.mark.parametrize("name", CONSERVATIVE)
def test_forces_are_minus_gradient(name: str) -> None:
    pot, a = make_potential(name), li_p_s()
    _e0, f0, _ = predict(pot, [a])
    h = 1e-5
    for atom, k in [(0, 0), (6, 1), (11, 2)]:
        plus, minus = a.copy(), a.copy()
        plus.positions[atom, k] += h
        minus.positions[atom, k] -= h
        fd = -(predict(pot, [plus])[0][0] - predict(pot, [minus])[0][0]) / (2 * h)
        assert abs(fd - f0[atom, k]) < 1e-6 * max(1.0, abs(fd)), (atom, k, fd, f0[atom, k])


@pytest.mark.parametrize("name", CONSERVATIVE)
def test_stress_is_strain_derivative(name: str) -> None:
    pot, a = make_potential(name), li_p_s()
    _, _, s = predict(pot, [a], stress=True)
    h = 1e-5
    for i, j in [(0, 0), (1, 2)]:
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = h / (1 if i == j else 2)
        es = []
        for sign in (1, -1):
            b = a.copy()
            b.set_cell(a.cell[:] @ (np.eye(3) + sign * eps), scale_atoms=True)
            es.append(predict(pot, [b])[0][0])
        fd = (es[0] - es[1]) / (2 * h) / a.get_volume()
        assert abs(fd - s[0, i, j]) < 1e-7, (i, j, fd, s[0, i, j])


def test_direct_force_model_is_flagged() -> None:
    assert not MODELS["forcenet"].conservative
    assert all(MODELS[m].conservative for m in CONSERVATIVE)
    assert len(CONSERVATIVE) == len(ALL) - 1


@pytest.mark.parametrize("name", ALL)
def test_batch_equals_one_by_one(name: str) -> None:
    pot = make_potential(name)
    structures = [li_p_s(1), bulk("Li", "bcc", a=3.45, cubic=True), li_p_s(2)]
    eb, fb, _ = predict(pot, structures)
    singles = [predict(pot, [s]) for s in structures]
    np.testing.assert_allclose(eb, [e[0] for e, _, _ in singles], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(fb, np.concatenate([f for _, f, _ in singles]), atol=1e-9)


@pytest.mark.parametrize("name", ALL)
def test_supercell_is_extensive_and_small_cells_work(name: str) -> None:
    pot = make_potential(name)
    small = bulk("Li", "bcc", a=3.45)  # 1 atom, cell far smaller than the 4.5 Å cutoff
    small.positions += 0.05
    two = bulk("LiP", "rocksalt", a=4.0) * (1, 1, 1)
    for cell, reps in [(small, (2, 2, 3)), (two, (2, 1, 1)), (li_p_s(), (1, 2, 1))]:
        cell = cell.copy()
        cell.rattle(0.05, seed=1)
        sup = cell * reps
        (e1,), f1, _ = predict(pot, [cell])
        (en,), fn, _ = predict(pot, [sup])
        n = int(np.prod(reps))
        np.testing.assert_allclose(en, n * e1, rtol=1e-9, atol=1e-8)
        np.testing.assert_allclose(fn, np.tile(f1, (n, 1)), atol=1e-8)


@pytest.mark.parametrize("name", ALL)
def test_energy_smooth_as_neighbour_crosses_cutoff(name: str) -> None:
    pot = make_potential(name)
    energies = []
    ds = [RC - 2e-3, RC - 1e-3, RC - 1e-6, RC + 1e-6, RC + 1e-3]
    for d in ds:
        # a dimer plus a fixed spectator (beyond rc of the moving atom), in a box that has no images in range
        a = Atoms("LiSP", positions=[[0, 0, 0], [d, 0, 0], [0, 2.0, 0]], cell=[20, 20, 20], pbc=True)
        energies.append(predict(pot, [a])[0][0])
    e = np.array(energies)
    assert abs(e[2] - e[3]) < 1e-8  # continuous at rc
    assert e[3] == e[4]  # flat beyond rc (no more interaction)
    assert abs(e[0] - e[1]) < 1e-4  # and its slope goes to zero
    assert abs(e[1] - e[2]) < abs(e[0] - e[1]) + 1e-10


def test_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'gemnet'; choose one of"):
        build_model("gemnet")
    with pytest.raises(UnknownModelError, match="bad hyper-parameter"):
        build_model("schnet", widht=3)
    assert type(build_model("DimeNet++", cutoff=4.0, hidden=8, layers=1)).__name__ == "DimeNetPP"
