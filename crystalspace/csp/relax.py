"""Relaxer interface (any force field) and the CHGNet implementation."""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Protocol

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


class RelaxPool:
    """A :class:`Relaxer` spreading work over Ray actors, each holding its own CHGNet (one core each)."""

    def __init__(self, n_actors: int = 2, fmax: float = 0.1, gpus: float = 0.0) -> None:
        """``gpus`` > 0: the actors share that many GPUs (CHGNet on CUDA instead of one core each)."""
        import ray

        from crystalspace.runtime import actors_that_fit, init_ray

        init_ray()
        n_actors = actors_that_fit(n_actors)
        actor = ray.remote(num_cpus=1, num_gpus=gpus / n_actors)(CHGNetRelaxer)
        device = "cuda" if gpus > 0 else "cpu"
        self.actors: list[Any] = [actor.remote(fmax=fmax, device=device) for _ in range(n_actors)]

    def _spread(self, method: str, structures: list[Structure], *args: int) -> list[Any]:
        """Small chunks handed to whichever actor is free (uneven relaxations balance out), in order."""
        from crystalspace.runtime import map_actors

        size = max(1, -(-len(structures) // (4 * len(self.actors))))
        chunks = [structures[i : i + size] for i in range(0, len(structures), size)]
        submit = lambda a, c: getattr(a, method).remote(c, *args)  # noqa: E731
        parts = map_actors(self.actors, submit, chunks, f"chgnet {method}", "structures", "chunks")
        return [r for part in parts for r in part]

    def relax(self, structures: list[Structure], steps: int) -> list[tuple[Structure, float]]:
        return self._spread("relax", structures, steps)

    def energy(self, structures: list[Structure]) -> list[float]:
        return self._spread("energy", structures)

    def close(self) -> None:
        """Stop the actors."""
        import ray

        for a in self.actors:
            ray.kill(a)
