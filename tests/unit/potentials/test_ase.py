"""ASE in both directions: a provider behind the ASE calculator and back gives the batched results."""

from __future__ import annotations

import pytest
import torch

from crystalspace.potentials import (
    AseCalculatorProvider,
    ForceProviderError,
    ProviderCalculator,
    get_provider,
)
from crystalspace.potentials.pair import PairPotential


def test_ase_calculator_adapter_matches_batched_provider(li3ps4):
    pot = PairPotential()
    adapter = AseCalculatorProvider(ProviderCalculator(pot))
    z = torch.as_tensor(li3ps4.numbers)
    pos = torch.as_tensor(li3ps4.positions)[None].repeat(2, 1, 1) + 0.03 * torch.randn(
        2, len(li3ps4), 3, dtype=torch.float64
    )
    cell = torch.as_tensor(li3ps4.cell[:])[None].repeat(2, 1, 1)
    e1, f1 = pot(z, pos, cell)
    e2, f2 = adapter(z, pos, cell)
    assert torch.allclose(e1, e2)
    assert torch.allclose(f1, f2)
    with pytest.raises(ForceProviderError, match="unknown force provider"):
        get_provider("no-such-model")
