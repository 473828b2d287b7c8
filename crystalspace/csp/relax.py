"""Relaxer interface (any force field) and the CHGNet implementation."""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Protocol

from pymatgen.core import Structure


class Relaxer(Protocol):
    """Relaxes structures and gives energies per atom (eV/atom); a registry model can implement this."""

    def relax(self, structures: list[Structure], steps: int) -> list[tuple[Structure, float]]: ...

    def energy(self, structures: list[Structure]) -> list[float]: ...


class CHGNetRelaxer:
    """CHGNet 0.3.0 (weights ship with chgnet) with FIRE, cell relaxed; few steps by default."""

    def __init__(self, fmax: float = 0.1, device: str = "cpu") -> None:
        from chgnet.model import CHGNet, StructOptimizer

        with contextlib.redirect_stdout(io.StringIO()):
            self.model = CHGNet.load(use_device=device, verbose=False)
            self.opt = StructOptimizer(model=self.model, optimizer_class="FIRE", use_device=device)
        self.fmax = fmax

    def relax(self, structures: list[Structure], steps: int) -> list[tuple[Structure, float]]:
        out: list[tuple[Structure, float]] = []
        for s in structures:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                try:
                    r = self.opt.relax(s, fmax=self.fmax, steps=steps, relax_cell=True, verbose=False)
                    final = r["final_structure"]
                    traj = r["trajectory"]
                    assert isinstance(final, Structure)
                    assert not isinstance(traj, Structure)
                    e = float(traj.energies[-1]) / len(final)
                except Exception:  # exploded cell etc.: keep the input, rank last
                    final, e = s, float("inf")
            out.append((final, e))
        return out

    def energy(self, structures: list[Structure]) -> list[float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            preds = self.model.predict_structure(structures, batch_size=16)
        preds = preds if isinstance(preds, list) else [preds]
        return [float(p["e"]) for p in preds]
