"""Combinatorics of composition space: element tuples, coprime stoichiometries, exact counts.

Element tuples are combinations of a pool of atomic numbers in lexicographic order, addressed
by their rank so that any shard of the space can be produced without listing what precedes it.
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np

MAX_ARITY = 4
MIN_ARITY = 2
MAX_STOICH_LIMIT = 12


@cache
def coprime_vectors(arity: int, limit: int) -> np.ndarray:
    """All stoichiometry vectors in ``[1..limit]^arity`` with gcd 1, lexicographic, uint8.

    These are the reduced compositions of one element tuple (MgO and Mg2O2 are one).
    """
    vecs = [v for v in itertools.product(range(1, limit + 1), repeat=arity) if math.gcd(*v) == 1]
    out = np.array(vecs, dtype=np.uint8)
    out.setflags(write=False)
    return out


def n_element_tuples(n_elements: int, arity: int) -> int:
    """Number of element tuples of ``arity`` distinct elements from a pool of ``n_elements``."""
    return math.comb(n_elements, arity)


def n_compositions(n_elements: int, arity: int, limit: int) -> int:
    """Closed form: unique compositions = C(n, k) x |coprime vectors in [1..limit]^k|."""
    return n_element_tuples(n_elements, arity) * len(coprime_vectors(arity, limit))


def unrank_combination(rank: int, n: int, k: int) -> tuple[int, ...]:
    """The ``rank``-th k-subset of ``range(n)`` in lexicographic order (0-based)."""
    out = []
    x = 0
    for i in range(k):
        while True:
            c = math.comb(n - x - 1, k - i - 1)
            if rank < c:
                break
            rank -= c
            x += 1
        out.append(x)
        x += 1
    return tuple(out)


def rank_combination(combo: tuple[int, ...], n: int) -> int:
    """Inverse of `unrank_combination`."""
    k = len(combo)
    rank = 0
    prev = -1
    for i, c in enumerate(combo):
        for x in range(prev + 1, c):
            rank += math.comb(n - x - 1, k - i - 1)
        prev = c
    return rank
