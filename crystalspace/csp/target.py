"""Targets: minimum-image distance matrices, equal-width bins, metrics."""

from __future__ import annotations

import itertools

import numpy as np
from pymatgen.core import Structure

_IMAGES = np.array(list(itertools.product((-1, 0, 1), repeat=3)), float)


def distance_matrix(structure: Structure, max_atoms: int = 12) -> np.ndarray:
    """Padded (max_atoms x max_atoms) minimum-image distances (pymatgen)."""
    d = np.zeros((max_atoms, max_atoms), np.float32)
    n = len(structure)
    d[:n, :n] = structure.distance_matrix
    return d


def batch_distances(frac: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Minimum-image distances for a population of fractional coordinates (P x n x 3) in one cell."""
    diff = frac[:, :, None, :] - frac[:, None, :, :]
    diff -= np.round(diff)
    cart = diff @ cell  # P x n x n x 3
    shifts = _IMAGES @ cell  # the 27 neighbouring images, 27 x 3
    # |r + s|² = |r|² + 2 r·s + |s|², without the P x n x n x 27 x 3 array (9× faster)
    d2 = (cart**2).sum(-1)[..., None] + 2 * cart @ shifts.T + (shifts**2).sum(-1)
    return np.sqrt(np.maximum(d2.min(-1), 0.0))


class Bins:
    """N equal-width bins between the dataset's min and max (off-diagonal) distance."""

    def __init__(self, lo: float, hi: float, n: int) -> None:
        self.lo, self.hi, self.n = lo, hi, n
        self.edges = np.linspace(lo, hi, n + 1)
        self.centres = 0.5 * (self.edges[1:] + self.edges[:-1])

    @classmethod
    def fit(cls, d: np.ndarray, pair_mask: np.ndarray, n: int) -> Bins:
        v = d[pair_mask]
        return cls(float(v.min()), float(v.max()), n)

    def index(self, d: np.ndarray) -> np.ndarray:
        return np.clip(np.digitize(d, self.edges[1:-1]), 0, self.n - 1).astype(np.int64)


def pair_mask(atom_mask: np.ndarray) -> np.ndarray:
    """Real off-diagonal pairs of a padded (… x n) atom mask."""
    m = atom_mask[..., :, None] & atom_mask[..., None, :]
    n = atom_mask.shape[-1]
    return m & ~np.eye(n, dtype=bool)


def metrics(pred: np.ndarray, true: np.ndarray, mask: np.ndarray, threshold: float = 8.0) -> dict[str, float]:
    """Distance MSE/RMSE (A) and distance-map overlap at ``threshold`` over real pairs."""
    p, t = pred[mask], true[mask]
    mse = float(np.mean((p - t) ** 2))
    overlap = float(np.mean((p < threshold) == (t < threshold)))
    return {"mse": mse, "rmse": mse**0.5, "overlap": overlap}
