"""The pair potential: forces are minus the energy gradient, and a lattice translation changes nothing."""

from __future__ import annotations

import pytest
import torch

from crystalspace.potentials.pair import PairPotential


def test_pair_forces_are_minus_energy_gradient(li3ps4):
    pot = PairPotential()
    z = torch.as_tensor(li3ps4.numbers)
    pos = torch.as_tensor(li3ps4.positions)[None] + 0.05 * torch.randn(1, len(li3ps4), 3, dtype=torch.float64)
    cell = torch.as_tensor(li3ps4.cell[:])[None]
    _, f = pot(z, pos, cell)
    h = 1e-5
    for atom, axis in [(0, 0), (7, 2), (12, 1)]:
        plus, minus = pos.clone(), pos.clone()
        plus[0, atom, axis] += h
        minus[0, atom, axis] -= h
        fd = -(pot(z, plus, cell)[0] - pot(z, minus, cell)[0]) / (2 * h)
        assert float(fd) == pytest.approx(float(f[0, atom, axis]), abs=1e-6)
    shifted = pos + torch.as_tensor(li3ps4.cell[:])[0]  # a lattice translation changes nothing
    assert float(pot(z, shifted, cell)[0]) == pytest.approx(float(pot(z, pos, cell)[0]), abs=1e-9)
