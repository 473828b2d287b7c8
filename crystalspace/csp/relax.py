"""Relaxation for CSP: :class:`crystalspace.potentials.Relaxer` (any provider, CHGNet by default),
and :class:`RelaxPool`, the same relaxer spread over Ray actors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymatgen.core import Structure

from crystalspace.potentials import Relaxed, Relaxer


class RelaxPool(Relaxer):
    """A :class:`~crystalspace.potentials.Relaxer` spreading work over Ray actors, each holding its own
    relaxer and provider (one core each)."""

    def __init__(
        self, n_actors: int = 2, fmax: float = 0.1, gpus: float = 0.0, provider: Any = "chgnet", **kwargs: Any
    ) -> None:
        """``gpus`` > 0: the actors share that many GPUs (the provider on CUDA instead of one core each);
        ``kwargs`` go to each actor's :class:`~crystalspace.potentials.Relaxer`."""
        import ray

        from crystalspace.runtime import actors_that_fit, init_ray

        init_ray()
        n_actors = actors_that_fit(n_actors)
        actor = ray.remote(num_cpus=1, num_gpus=gpus / n_actors)(Relaxer)
        device = "cuda" if gpus > 0 else "cpu"
        self.actors: list[Any] = [
            actor.remote(provider, fmax=fmax, device=device, **kwargs) for _ in range(n_actors)
        ]
        self.fmax, self._name = fmax, str(provider)

    @property
    def name(self) -> str:
        return self._name

    def _spread(self, method: str, structures: Sequence[Structure], *args: Any) -> list[Any]:
        """Small chunks handed to whichever actor is free (uneven relaxations balance out), in order."""
        from crystalspace.runtime import map_actors

        size = max(1, -(-len(structures) // (4 * len(self.actors))))
        chunks = [structures[i : i + size] for i in range(0, len(structures), size)]
        submit = lambda a, c: getattr(a, method).remote(c, *args)  # noqa: E731
        parts = map_actors(self.actors, submit, chunks, f"{self.name} {method}", "structures", "chunks")
        return [r for part in parts for r in part]

    def relax(self, structures: Sequence[Any], steps: int = 500, fmax: float | None = None) -> list[Relaxed]:
        return self._spread("relax", structures, steps, fmax)

    def energies(self, structures: Sequence[Any]) -> np.ndarray:
        return np.asarray(self._spread("energies", structures), dtype=float)

    def close(self) -> None:
        """Stop the actors."""
        import ray

        for a in self.actors:
            ray.kill(a)
