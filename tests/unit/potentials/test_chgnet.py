"""CHGNet (the teacher) as a provider reproduces the labels of the committed reference frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _paths import DATA

from crystalspace.potentials import get_provider

REF = DATA / "mlff_subset"  # relaxed CIFs + labelled frames


def test_chgnet_provider_reproduces_reference_labels():
    """The ASE adapter around CHGNet (the teacher) gives the reference files' own energies and forces."""
    import warnings

    import pyarrow.parquet as pq

    rows = pq.read_table(f"{REF}/Li3PS4.parquet").slice(200, 2).to_pylist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        provider = get_provider("chgnet")
        z = torch.as_tensor(np.asarray(rows[0]["numbers"], dtype=np.int64))
        pos = torch.as_tensor(
            np.stack([np.reshape(r["positions"], (-1, 3)) for r in rows]), dtype=torch.float64
        )
        cell = torch.as_tensor(np.stack([np.reshape(r["cell"], (3, 3)) for r in rows]))
        energy, forces = provider(z, pos, cell)
    assert energy.numpy() == pytest.approx([r["energy"] for r in rows], abs=1e-3)
    assert np.abs(forces.numpy() - np.stack([np.reshape(r["forces"], (-1, 3)) for r in rows])).max() < 1e-3
