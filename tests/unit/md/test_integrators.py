"""MD integrators: NVE conserves energy, and one replica follows ASE's VelocityVerlet and
NoseHooverChainNVT step for step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crystalspace.md.integrators import FS, MDState, NoseHooverChain, nhc_step, velocity_verlet
from crystalspace.potentials import ProviderCalculator
from crystalspace.potentials.pair import PairPotential


def _state(atoms, provider, momenta_seed=0, temperature=600.0, replicas=1):
    from ase.data import atomic_masses

    from crystalspace.md.integrators import maxwell_boltzmann

    z = torch.as_tensor(atoms.numbers)
    cell = torch.as_tensor(atoms.cell[:])[None].repeat(replicas, 1, 1)
    pos = torch.as_tensor(atoms.positions)[None].repeat(replicas, 1, 1).clone()
    masses = torch.as_tensor(atomic_masses[atoms.numbers])
    p = maxwell_boltzmann(masses, temperature, [momenta_seed + k for k in range(replicas)])
    e, f = provider(z, pos, cell)
    return MDState(pos, p, masses, e, f), (lambda q: provider(z, q, cell))


def test_nve_conserves_energy(li3ps4):
    state, forces = _state(li3ps4, PairPotential(), replicas=2)
    e0 = (state.energy + state.kinetic_energy()).clone()
    drift = []
    for _ in range(300):
        velocity_verlet(state, forces, 1.0 * FS)
        drift.append(((state.energy + state.kinetic_energy()) - e0).abs().max().item())
    assert max(drift) / len(li3ps4) < 2e-4  # eV/atom over 0.3 ps
    assert state.temperature().min() > 50  # it actually moved


@pytest.mark.parametrize("ensemble", ["nve", "nhc"])
def test_agrees_with_ase_integrators(li3ps4, ensemble):
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet

    pot = PairPotential()
    state, forces = _state(li3ps4, pot, temperature=800.0)
    atoms = li3ps4.copy()
    atoms.calc = ProviderCalculator(pot)
    atoms.set_momenta(state.momenta[0].numpy())
    dt = 2 * FS
    if ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=dt)
    else:
        dyn = NoseHooverChainNVT(atoms, timestep=dt, temperature_K=1000, tdamp=100 * dt, tchain=3)
        nhc = NoseHooverChain(torch.tensor([1000.0], dtype=torch.float64), len(atoms), 100 * dt, 3, 1)
    for _ in range(50):
        dyn.run(1)
        if ensemble == "nve":
            velocity_verlet(state, forces, dt)
        else:
            nhc_step(state, forces, dt, nhc)
    assert np.abs(atoms.positions - state.positions[0].numpy()).max() < 1e-8
    assert np.abs(atoms.get_momenta() - state.momenta[0].numpy()).max() < 1e-8
