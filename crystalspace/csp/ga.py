"""Genetic algorithm: fractional coordinates in a fixed lattice fitted to a predicted distance matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Element, Lattice, Structure

from crystalspace.csp.target import batch_distances


@dataclass
class GAConfig:
    """GA settings."""

    population: int = 60
    generations: int = 80
    mutation: float = 0.08
    elite: int = 4
    min_dist: float = 1.2  # A; closer pairs are penalised


def pair_groups(zs: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Index pairs grouped by element pair (upper triangle): distances within a group are compared sorted."""
    n = len(zs)
    iu, ju = np.triu_indices(n, 1)
    groups: dict[tuple[int, int], list[int]] = {}
    for k, (i, j) in enumerate(zip(iu, ju, strict=True)):
        groups.setdefault((min(zs[i], zs[j]), max(zs[i], zs[j])), []).append(k)
    return [(iu[np.array(v)], ju[np.array(v)]) for v in groups.values()]


def mismatch(
    d_pop: np.ndarray,
    d_target: np.ndarray,
    groups: list[tuple[np.ndarray, np.ndarray]],
    min_dist: float = 1.2,
) -> np.ndarray:
    """Permutation-aware RMS mismatch: sorted distances per element pair, plus a short-contact penalty."""
    err = np.zeros(len(d_pop))
    count = 0
    for i, j in groups:
        a = np.sort(d_pop[:, i, j], axis=1)
        b = np.sort(d_target[i, j])
        err += ((a - b[None]) ** 2).sum(1)
        count += len(i)
    n = d_pop.shape[1]
    iu = np.triu_indices(n, 1)
    short = np.clip(min_dist - d_pop[:, iu[0], iu[1]], 0, None)
    return np.sqrt(err / max(count, 1)) + 5.0 * short.sum(1)


def run_ga(
    zs: list[int], lattice: Lattice, d_target: np.ndarray, cfg: GAConfig, seed: int
) -> tuple[Structure, float]:
    """One GA run; returns the best structure and its fitness (lower is better)."""
    rng = np.random.default_rng(seed)
    n = len(zs)
    cell = lattice.matrix
    groups = pair_groups(zs)
    pop = rng.random((cfg.population, n, 3))
    if n == 1:
        return Structure(lattice, [Element.from_Z(z) for z in zs], pop[0]), 0.0
    fit = mismatch(batch_distances(pop, cell), d_target, groups, cfg.min_dist)
    for _ in range(cfg.generations):
        order = np.argsort(fit)
        pop, fit = pop[order], fit[order]
        k = cfg.population - cfg.elite
        t = rng.integers(0, cfg.population, (k, 2, 2))
        pa = pop[np.where(fit[t[:, 0, 0]] < fit[t[:, 0, 1]], t[:, 0, 0], t[:, 0, 1])]
        pb = pop[np.where(fit[t[:, 1, 0]] < fit[t[:, 1, 1]], t[:, 1, 0], t[:, 1, 1])]
        take = rng.random((k, n, 1)) < 0.5  # uniform crossover per atom
        child = np.where(take, pa, pb)
        mut = rng.random((k, n, 1)) < 0.3
        child = (child + mut * rng.normal(0, cfg.mutation, child.shape)) % 1.0
        pop = np.concatenate([pop[: cfg.elite], child])
        fit = np.concatenate(
            [fit[: cfg.elite], mismatch(batch_distances(child, cell), d_target, groups, cfg.min_dist)]
        )
    b = int(np.argmin(fit))
    return Structure(lattice, [Element.from_Z(z) for z in zs], pop[b]), float(fit[b])


def random_structure(zs: list[int], lattice: Lattice, seed: int, spacegroup: int | None = None) -> Structure:
    """Random-search baseline candidate: pyxtal random symmetric crystal when possible, else random positions."""
    if spacegroup and spacegroup > 1:
        try:
            from pyxtal import pyxtal

            comp: dict[str, int] = {}
            for z in zs:
                comp[Element.from_Z(z).symbol] = comp.get(Element.from_Z(z).symbol, 0) + 1
            c = pyxtal()
            c.from_random(3, spacegroup, list(comp), list(comp.values()), seed=seed, max_count=20)
            if c.valid:
                s: Structure = c.to_pymatgen()
                return s.get_sorted_structure(key=lambda site: site.specie.Z)
        except Exception:
            pass
    rng = np.random.default_rng(seed)
    return Structure(lattice, [Element.from_Z(z) for z in zs], rng.random((len(zs), 3)))
