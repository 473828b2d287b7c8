"""Sampling and post-processing: slerp stays on the arc, overlapping atoms merge across the boundary."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

from crystalspace.gen.sample import postprocess, slerp, v_oxidation_state


def test_slerp_stays_on_the_arc():
    z0, z1 = np.array([2.0, 0.0]), np.array([0.0, 2.0])
    assert np.allclose(slerp(z0, z1, 0.0), z0)
    assert np.allclose(slerp(z0, z1, 1.0), z1)
    for t in (0.25, 0.5):
        p = slerp(z0, z1, t)
        assert np.isclose(np.linalg.norm(p), 2.0)  # on the arc, not the chord
        assert np.isclose(np.arctan2(p[1], p[0]), t * np.pi / 2)


def test_postprocess_merges_overlaps_under_pbc():
    lat = Lattice.cubic(6.0)
    s = Structure(lat, ["V", "V", "O", "O"], [[0.01, 0, 0], [0.99, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.72]])
    heights = np.array([1.0, 0.8, 0.9, 0.7])
    out = postprocess(s, heights, {("V", "V"): 2.2, ("O", "O"): 2.2, ("O", "V"): 1.4})
    # V pair 0.12 Å apart across the boundary merges; the O pair (1.32 Å) merges too.
    assert out.composition.get_el_amt_dict() == {"V": 1.0, "O": 1.0}
    assert v_oxidation_state(out) == 2.0
