"""Lattice model: random forests on composition features -> a, b, c, alpha, beta, gamma, space group."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from crystalspace.csp.data import Entry
from crystalspace.csp.features import composition_vector, species_of
from crystalspace.errors import UserError

# The one type in a saved pair of forests that skops does not trust by default (its
# ``get_untrusted_types`` reports exactly this); anything else in a file is refused.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


class LatticeFileError(UserError, ValueError):
    """A lattice-model file that skops refuses (a type outside the trusted list) or cannot read."""


@dataclass
class LatticeGuess:
    """Lattice parameters (A, degrees) and space group for one composition."""

    abc: tuple[float, float, float]
    angles: tuple[float, float, float]
    spacegroup: int


class LatticeModel:
    """MLatticeABC-like: RF regression of the six parameters plus RF classification of the space group."""

    def __init__(self, n_estimators: int = 100, seed: int = 0) -> None:
        self.reg = RandomForestRegressor(n_estimators=n_estimators, random_state=seed, n_jobs=1)
        self.clf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)

    @staticmethod
    def _xy(entries: list[Entry]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.stack([composition_vector(species_of(e.structure)) for e in entries])
        y = np.array([[*e.structure.lattice.abc, *e.structure.lattice.angles] for e in entries])
        return x, y, np.array([e.spacegroup for e in entries])

    def fit(self, entries: list[Entry]) -> LatticeModel:
        x, y, sg = self._xy(entries)
        self.reg.fit(x, y)
        self.clf.fit(x, sg)
        return self

    def to_bytes(self) -> bytes:
        """Both forests in skops format (which runs no code when read back with :meth:`load`)."""
        import skops.io as sio

        return bytes(sio.dumps({"reg": self.reg, "clf": self.clf}))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatticeModel:
        """Read what :meth:`save` wrote, trusting only sklearn's tree type beyond skops' defaults."""
        import skops.io as sio

        try:
            forests = sio.load(path, trusted=TRUSTED_TYPES)
        except Exception as exc:  # untrusted types or a corrupt file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise LatticeFileError(
                f"{path}: not a lattice model this version can read safely ({first})"
            ) from None
        reg, clf = (forests.get("reg"), forests.get("clf")) if isinstance(forests, dict) else (None, None)
        if not (isinstance(reg, RandomForestRegressor) and isinstance(clf, RandomForestClassifier)):
            raise LatticeFileError(f"{path}: not a lattice model (expected two random forests)")
        model = cls()
        model.reg, model.clf = reg, clf
        return model

    def predict(self, zs: list[int]) -> LatticeGuess:
        x = composition_vector(zs)[None]
        p = self.reg.predict(x)[0]
        return LatticeGuess((p[0], p[1], p[2]), (p[3], p[4], p[5]), int(self.clf.predict(x)[0]))

    def score(self, entries: list[Entry]) -> dict[str, float]:
        """MAE of a,b,c (A), angles (deg), volume relative error and space-group accuracy."""
        x, y, sg = self._xy(entries)
        p = self.reg.predict(x)
        vol_t = np.array([e.structure.volume for e in entries])
        vol_p = np.array([_volume(r) for r in p])
        return {
            "mae_abc": float(np.abs(p[:, :3] - y[:, :3]).mean()),
            "mae_angles": float(np.abs(p[:, 3:] - y[:, 3:]).mean()),
            "volume_rel_err": float(np.mean(np.abs(vol_p - vol_t) / vol_t)),
            "spacegroup_acc": float(np.mean(self.clf.predict(x) == sg)),
        }


def _volume(p: np.ndarray) -> float:
    from pymatgen.core import Lattice

    try:
        return float(Lattice.from_parameters(*p).volume)
    except Exception:
        return float("nan")
