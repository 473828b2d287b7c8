"""Training pieces: the VAE loss weights, the cosine learning-rate decay, and cyclic cell settings
that are the same crystal in another cell."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure


def test_vae_loss_weights_the_cell_code_and_counts_and_lr_decays():
    import torch

    from crystalspace.gen.models import vae_loss
    from crystalspace.gen.train import _cosine

    x = torch.zeros(4, 10)
    recon = x.clone()
    recon[:, :2] = 1.0  # error only in the "cell" numbers
    out = (recon, torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4))
    stable = torch.ones(4)
    flat, parts = vae_loss(x, out, stable, beta=0.0, gamma=0.0)
    assert np.isclose(parts["rec"], 0.2)
    ones, _ = vae_loss(x, out, stable, 0.0, 0.0, torch.ones(10))
    assert torch.isclose(ones, flat)
    w = torch.ones(10)
    w[:2] = 10.0
    weighted, _ = vae_loss(x, out, stable, 0.0, 0.0, w)
    assert np.isclose(weighted.item(), 20 / 28)  # normalised by the mean weight
    # Errors outside the weighted block count less than unweighted.
    recon2 = x.clone()
    recon2[:, 5:] = 1.0
    assert (
        vae_loss(x, (recon2, *out[1:]), stable, 0.0, 0.0, w)[0]
        < vae_loss(x, (recon2, *out[1:]), stable, 0.0, 0.0)[0]
    )

    from crystalspace.gen.train import TrainSettings, vae_weights

    # [cell code (4) | basis codes | counts (2)]
    w = vae_weights(TrainSettings(cell_latent=4, cell_weight=30, count_weight=10), 12, 2)
    assert w.tolist() == [30.0] * 4 + [1.0] * 6 + [10.0] * 2

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = _cosine(opt, 10, 0.01)
    lrs = []
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert np.isclose(lrs[-1], 1e-5)


def test_cyclic_cells_are_the_same_crystal_in_another_cell():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from crystalspace.gen.images import ImageSpec
    from crystalspace.gen.train import cyclic_cells

    s = Structure(
        Lattice.from_parameters(3.0, 4.0, 5.5, 80, 95, 110),
        ["V", "O", "O"],
        [[0, 0, 0], [0.3, 0.1, 0.6], [0.7, 0.5, 0.2]],
    )
    none, _ = cyclic_cells([s], np.array([0]), 1, ImageSpec())
    assert none == []  # one setting: the stored cells only
    extra, origin = cyclic_cells([s, s.copy()], np.array([1]), 3, ImageSpec())
    assert list(origin) == [1, 1]
    assert np.array([t.lattice.abc for t in extra]) == pytest.approx(np.array([(4, 5.5, 3), (5.5, 3, 4)]))
    assert np.array([t.lattice.angles for t in extra]) == pytest.approx(
        np.array([(95, 110, 80), (110, 80, 95)])
    )
    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False)
    assert all(matcher.fit(s, t) for t in extra)
