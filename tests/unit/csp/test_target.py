"""The distance-matrix target: periodic distances against pymatgen, bins, metrics."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

from crystalspace.csp.target import Bins, batch_distances, distance_matrix, metrics, pair_mask


def test_distances_match_pymatgen_and_bins() -> None:
    s = Structure(
        Lattice.from_parameters(3.1, 4.2, 5.3, 80, 95, 110),
        ["Na", "Cl", "Cl"],
        [[0, 0, 0], [0.5, 0.4, 0.3], [0.9, 0.1, 0.6]],
    )
    d = batch_distances(s.frac_coords[None], s.lattice.matrix)[0]
    np.testing.assert_allclose(d, s.distance_matrix, atol=1e-6)
    dm = distance_matrix(s)
    assert dm.shape == (12, 12)
    assert np.allclose(dm[:3, :3], s.distance_matrix)
    mask = pair_mask(np.array([True] * 3 + [False] * 9))
    b = Bins.fit(dm, mask, 5)
    idx = b.index(dm[mask])
    assert idx.min() == 0
    assert idx.max() == 4
    assert metrics(dm, dm, mask) == {"mse": 0.0, "rmse": 0.0, "overlap": 1.0}
