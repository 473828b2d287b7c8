"""The genetic algorithm recovers a known structure from its distance matrix."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

from crystalspace.csp.features import species_of
from crystalspace.csp.ga import GAConfig, mismatch, pair_groups, run_ga
from crystalspace.csp.target import batch_distances


def test_ga_recovers_a_known_structure() -> None:
    s = Structure(
        Lattice.cubic(4.2),
        ["Na"] * 4 + ["Cl"] * 4,
        [
            [0, 0, 0],
            [0.5, 0.5, 0],
            [0.5, 0, 0.5],
            [0, 0.5, 0.5],
            [0.5, 0, 0],
            [0, 0.5, 0],
            [0, 0, 0.5],
            [0.5, 0.5, 0.5],
        ],
    )
    zs = species_of(s)
    groups = pair_groups(zs)
    d = s.distance_matrix
    assert mismatch(d[None], d, groups)[0] < 1e-9
    perm = np.array([1, 0, 3, 2, 7, 6, 5, 4])  # permutation within elements is free
    assert mismatch(d[perm][:, perm][None], d, groups)[0] < 1e-9
    _, fit = run_ga(zs, s.lattice, d, GAConfig(population=80, generations=150), seed=1)
    rand = mismatch(batch_distances(np.random.default_rng(0).random((50, 8, 3)), s.lattice.matrix), d, groups)
    assert fit < 0.5 * np.median(rand)
