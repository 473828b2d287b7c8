"""The one relaxer: FIRE and BFGS lower the pair energy (positions only, or with the cell to zero
stress), and CHGNet's relaxation and batched energies agree with its ASE calculator."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from crystalspace.potentials import ProviderCalculator, Relaxer, get_provider, structure_energies
from crystalspace.potentials.base import batch_of


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
