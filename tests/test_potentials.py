"""Potentials: every provider behaves the same (float64), the ASE calculator round trip, the relaxer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.io import read

from crystalspace.mlff.models import build_model
from crystalspace.mlff.potential import Potential
from crystalspace.potentials import (
    AseCalculatorProvider,
    ForceProviderError,
    ProviderCalculator,
    Relaxer,
    check_provider,
    get_provider,
    provider_info,
    structure_energies,
)
from crystalspace.potentials.base import batch_of, has_stress
from crystalspace.potentials.mlff import potential_provider

CIF = Path(__file__).parent / "data" / "mlff_subset" / "Li3PS4_chgnet_relaxed.cif"
H = 1e-5  # finite-difference step (Å, or strain)


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def li3ps4() -> Atoms:
    return read(CIF)


def tiny_model() -> Potential:
    """An untrained SchNet of the project's zoo, float64, with non-trivial reference energies."""
    torch.manual_seed(0)
    model = build_model("schnet", cutoff=4.5, hidden=16, layers=2).double()
    with torch.no_grad():
        model.atom_ref.uniform_(-1, 1)
    return Potential(model).eval()


PROVIDERS = {"pair": lambda: get_provider("pair"), "schnet": lambda: potential_provider(tiny_model())}


@pytest.fixture(scope="module", params=sorted(PROVIDERS))
def provider(request):
    return PROVIDERS[request.param]()


def jittered(atoms: Atoms, replicas: int, scale: float = 0.05, seed: int = 0):
    """(numbers, positions [R, N, 3], cell [R, 3, 3]) float64 tensors of jittered copies."""
    rng = np.random.default_rng(seed)
    pos = atoms.positions[None] + scale * rng.standard_normal((replicas, len(atoms), 3))
    cell = np.repeat(np.asarray(atoms.cell[:])[None], replicas, axis=0)
    return torch.as_tensor(atoms.numbers), torch.as_tensor(pos), torch.as_tensor(cell)


def energy(provider, z, pos, cell) -> float:
    return float(provider(z, pos, cell)[0][0])


def test_batch_equals_one_by_one(provider, li3ps4):
    z, pos, cell = jittered(li3ps4, 3)
    e, f = provider(z, pos, cell)
    assert e.shape == (3,)
    assert f.shape == (3, len(li3ps4), 3)
    for r in range(3):
        e1, f1 = provider(z, pos[r : r + 1], cell[r : r + 1])
        assert float(e1[0]) == pytest.approx(float(e[r]), abs=1e-10)
        assert torch.allclose(f1[0], f[r], atol=1e-10)


def test_forces_are_minus_energy_gradient(provider, li3ps4):
    z, pos, cell = jittered(li3ps4, 1, seed=1)
    _, f = provider(z, pos, cell)
    assert f.abs().max() > 1e-3
    for atom, axis in [(0, 0), (7, 2), (12, 1)]:
        plus, minus = pos.clone(), pos.clone()
        plus[0, atom, axis] += H
        minus[0, atom, axis] -= H
        fd = -(energy(provider, z, plus, cell) - energy(provider, z, minus, cell)) / (2 * H)
        assert fd == pytest.approx(float(f[0, atom, axis]), abs=1e-6)


def test_translation_invariance(provider, li3ps4):
    z, pos, cell = jittered(li3ps4, 1, seed=2)
    moved = Atoms(
        numbers=li3ps4.numbers,
        positions=pos[0].numpy() + np.array([1.3, -0.7, 2.9]),
        cell=li3ps4.cell,
        pbc=True,
    )
    moved.wrap()
    e0, f0 = provider(z, pos, cell)
    e1, f1 = provider(z, torch.as_tensor(moved.positions)[None], cell)
    assert float(e1[0]) == pytest.approx(float(e0[0]), abs=1e-8)
    assert torch.allclose(f1, f0, atol=1e-8)


def test_stress_is_strain_derivative(provider, li3ps4):
    assert has_stress(provider)
    z, pos, cell = jittered(li3ps4, 1, seed=3)
    sigma = provider(z, pos, cell, stress=True)[2][0]
    volume = abs(float(torch.linalg.det(cell[0])))
    for i, j in [(0, 0), (2, 2), (0, 1), (1, 2)]:
        strain = torch.zeros(3, 3, dtype=torch.float64)
        strain[i, j] += H / 2
        strain[j, i] += H / 2
        deform = [torch.eye(3, dtype=torch.float64) + s * strain for s in (1, -1)]
        e_plus, e_minus = (energy(provider, z, pos @ d, cell @ d) for d in deform)
        assert (e_plus - e_minus) / (2 * H * volume) == pytest.approx(float(sigma[i, j]), abs=1e-7)


def test_ase_calculator_round_trip(provider, li3ps4):
    """provider → ASE calculator → provider gives the same energies, forces and stress."""
    back = AseCalculatorProvider(ProviderCalculator(provider))
    z, pos, cell = jittered(li3ps4, 2, seed=4)
    direct, round_trip = provider(z, pos, cell, stress=True), back(z, pos, cell, stress=True)
    for a, b in zip(direct, round_trip, strict=True):
        assert torch.allclose(a.double(), b, atol=1e-10)
    atoms = Atoms(numbers=li3ps4.numbers, positions=pos[0].numpy(), cell=cell[0].numpy(), pbc=True)
    assert structure_energies(provider, [atoms])[0] == pytest.approx(float(direct[0][0]), abs=1e-10)


def test_registry_names():
    check_provider("pair")
    assert provider_info("chgnet")["parameters"] == 412525
    assert provider_info("pair")["epochs"] == "none (analytic)"
    with pytest.raises(ForceProviderError, match="unknown force provider 'no-such-model'"):
        check_provider("no-such-model")
    with pytest.raises(ForceProviderError, match="unknown force provider"):
        get_provider("no-such-model")
    with pytest.raises(ForceProviderError, match="gives no stress"):
        Relaxer(lambda z, pos, cell: get_provider("pair")(z, pos, cell), relax_cell=True)


def perturbed(atoms: Atoms, scale: float = 0.15, stretch: float = 1.0, seed: int = 5) -> Atoms:
    out = atoms.copy()
    out.set_cell(out.cell[:] * stretch, scale_atoms=True)
    out.positions += np.random.default_rng(seed).normal(0, scale, out.positions.shape)
    return out


@pytest.mark.parametrize("optimizer", ["FIRE", "BFGS"])
def test_relaxer_lowers_pair_energy_positions_only(li3ps4, optimizer):
    start = perturbed(li3ps4)
    relaxer = Relaxer("pair", optimizer=optimizer, relax_cell=False, fmax=0.05)
    (r,) = relaxer.relax([start], steps=300)
    e0 = relaxer.energies([start])[0] * len(start)
    assert r.energy < e0 - 0.1
    assert r.converged
    assert 0 < r.steps <= 300
    assert np.allclose(r.atoms.cell[:], start.cell[:])  # positions only
    assert np.abs(ProviderCalculator("pair").get_forces(r.atoms)).max() < 0.05


def test_relaxer_with_cell():
    """Rock salt NaCl under the pair potential, compressed and jittered, relaxes to zero stress."""
    start = bulk("NaCl", "rocksalt", a=5.4)
    start.positions += np.random.default_rng(6).normal(0, 0.05, start.positions.shape)
    (r,) = Relaxer(get_provider("pair"), optimizer="BFGS", fmax=0.01).relax([start], steps=100)
    assert r.converged
    assert r.energy < float(structure_energies(get_provider("pair"), [start])[0]) - 0.1
    assert r.atoms.get_volume() > start.get_volume() + 2.0  # the cell expanded
    assert np.abs(ProviderCalculator("pair").get_stress(r.atoms)).max() < 1e-3  # eV/Å³
    assert r.structure.composition.reduced_formula == "NaCl"


def test_chgnet_relaxer_and_batched_energies(li3ps4):
    relaxer = Relaxer("chgnet")  # FIRE, cell relaxed, fmax 0.1 eV/Å: what CSP and generation use
    assert relaxer.name == "chgnet-0.3.0"
    start = perturbed(li3ps4, scale=0.08)
    (r,) = relaxer.relax([start], steps=5)
    assert r.steps == 5
    assert r.calls == 6
    e0 = relaxer.energies([start])[0]
    assert r.energy_per_atom < e0 - 0.01
    # the batched path (CHGNet's predict_structure) agrees with CHGNet's ASE calculator
    batched = structure_energies(relaxer.provider, [start, li3ps4])
    single = [float(relaxer.provider(*batch_of(a))[0][0]) for a in (start, li3ps4)]
    np.testing.assert_allclose(batched, single, atol=1e-4)
    assert batched[1] / len(li3ps4) == pytest.approx(-4.64, abs=0.05)  # CHGNet's relaxed Li3PS4
