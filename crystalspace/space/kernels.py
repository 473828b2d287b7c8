"""SMACT filter kernels (numba, CPU): charge neutrality + Pauling electronegativity order.

The space of one arity is a product: element tuples x coprime stoichiometry vectors. For every
tuple of charges ``(q1..qk)`` we precompute a bitmask over the coprime vectors ``n`` with
``sum(n_i q_i) == 0``. An element tuple is then filtered by OR-ing the masks of its oxidation
assignments that pass the Pauling test (every cation strictly less electronegative than every
anion; an element without a Pauling value never passes), exactly as ``smact.screening.
smact_filter`` decides, but without materialising any composition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numba
import numpy as np
from numba import njit, prange

from crystalspace.chem.elements import element_table
from crystalspace.chem.oxidation import OxidationSet
from crystalspace.space.combinatorics import coprime_vectors

CHUNK = 256  # element tuples per unrank in the parallel count kernel


@dataclass(frozen=True)
class FilterTables:
    """Everything a kernel needs for one (arity, stoichiometry limit, oxidation set, pool)."""

    arity: int
    limit: int
    pool: np.ndarray  # int64 [N] atomic numbers, ascending
    states: np.ndarray  # int64 [N, S] oxidation states per pool element, preference order
    n_states: np.ndarray  # int64 [N]
    pauling: np.ndarray  # float64 [N], NaN where missing
    vectors: np.ndarray  # uint8 [V, k] coprime stoichiometries
    masks: np.ndarray  # uint64 [R**k, W] neutral-vector bitmask per charge tuple
    nonempty: np.ndarray  # bool [R**k]
    qmin: int
    radix: int  # R: number of distinct charge values qmin..qmax
    binom: np.ndarray  # int64 [N+1, k+1] binomial table for unranking

    @property
    def n_vectors(self) -> int:
        return int(self.vectors.shape[0])


def _preference_order(charges: tuple[int, ...]) -> list[int]:
    """Order in which an element's states are tried, so the recorded neutral assignment is the
    chemically plain one: anion states most negative first (O-2 before O-1), then cation
    states in ascending order."""
    return sorted(charges, key=lambda q: (q >= 0, -abs(q) if q < 0 else q))


@njit(cache=True)
def _build_masks(vectors: np.ndarray, qmin: int, radix: int, words: int) -> np.ndarray:
    k = vectors.shape[1]
    n_tuples = radix**k
    masks = np.zeros((n_tuples, words), dtype=np.uint64)
    q = np.empty(k, dtype=np.int64)
    for c in range(n_tuples):
        rest = c
        for i in range(k - 1, -1, -1):
            q[i] = rest % radix + qmin
            rest //= radix
        for v in range(vectors.shape[0]):
            total = 0
            for i in range(k):
                total += q[i] * np.int64(vectors[v, i])
            if total == 0:
                masks[c, v >> 6] |= np.uint64(1) << np.uint64(v & 63)
    return masks


@cache
def filter_tables(ox: OxidationSet, arity: int, limit: int, pool: tuple[int, ...]) -> FilterTables:
    """Precompute the kernel tables (cached per set, arity, limit and element pool)."""
    table = element_table()
    qmin, qmax = ox.charge_range()
    radix = qmax - qmin + 1
    vectors = coprime_vectors(arity, limit)
    words = (len(vectors) + 63) // 64
    masks = _build_masks(np.ascontiguousarray(vectors), qmin, radix, words)
    n = len(pool)
    width = max(1, max(len(ox.states[z]) for z in pool))
    states = np.zeros((n, width), dtype=np.int64)
    n_states = np.zeros(n, dtype=np.int64)
    for i, z in enumerate(pool):
        ordered = _preference_order(ox.states[z])
        states[i, : len(ordered)] = ordered
        n_states[i] = len(ordered)
    binom = np.array([[math.comb(m, j) for j in range(arity + 1)] for m in range(n + 1)], dtype=np.int64)
    return FilterTables(
        arity=arity,
        limit=limit,
        pool=np.array(pool, dtype=np.int64),
        states=states,
        n_states=n_states,
        pauling=table.pauling[list(pool)].astype(np.float64),
        vectors=vectors,
        masks=masks,
        nonempty=np.asarray(masks.any(axis=1)),
        qmin=qmin,
        radix=radix,
        binom=binom,
    )


@njit(cache=True, inline="always")
def _popcount(x: np.uint64) -> np.int64:
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True)
def _unrank(rank: np.int64, n: int, k: int, binom: np.ndarray, out: np.ndarray) -> None:
    x = 0
    for i in range(k):
        while True:
            c = binom[n - x - 1, k - i - 1]
            if rank < c:
                break
            rank -= c
            x += 1
        out[i] = x
        x += 1


@njit(cache=True)
def _advance(combo: np.ndarray, n: int, k: int) -> None:
    i = k - 1
    while i >= 0 and combo[i] == n - k + i:
        i -= 1
    if i < 0:
        return
    combo[i] += 1
    for j in range(i + 1, k):
        combo[j] = combo[j - 1] + 1


@njit(cache=True)
def _union_mask(
    combo: np.ndarray,
    states: np.ndarray,
    n_states: np.ndarray,
    pauling: np.ndarray,
    masks: np.ndarray,
    nonempty: np.ndarray,
    qmin: int,
    radix: int,
    union: np.ndarray,
    rep: np.ndarray,
    record: bool,
    idx: np.ndarray,
    order: np.ndarray,
) -> None:
    """OR into ``union`` the neutral masks of every Pauling-passing assignment of ``combo``.

    With ``record``, ``rep[v]`` receives the charge-tuple index of the first assignment (in
    preference order) that makes vector ``v`` neutral. ``idx`` and ``order`` are scratch
    arrays of length k (allocated once by the caller, not per tuple).
    """
    k = combo.shape[0]
    words = union.shape[0]
    union[:] = 0
    for i in range(k):
        e = combo[i]
        if n_states[e] == 0 or np.isnan(pauling[e]):
            return
    idx[:] = 0
    # Odometer order: the most electronegative element turns slowest, so its preferred (most
    # negative) state is tried first and the recorded assignment reads Al+2 S-2, not Al+1 S-1.
    for i in range(k):
        order[i] = i
    if record:  # only the recorded assignment depends on the order; counting skips the sort
        for a in range(1, k):
            b = a
            while b > 0 and pauling[combo[order[b]]] < pauling[combo[order[b - 1]]]:
                order[b], order[b - 1] = order[b - 1], order[b]
                b -= 1
    while True:
        max_cation = -np.inf
        min_anion = np.inf
        c = 0
        for i in range(k):
            e = combo[i]
            q = states[e, idx[i]]
            c = c * radix + (q - qmin)
            if q > 0 and pauling[e] > max_cation:
                max_cation = pauling[e]
            elif q < 0 and pauling[e] < min_anion:
                min_anion = pauling[e]
        if max_cation < min_anion and nonempty[c]:
            if record:
                for w in range(words):
                    new = masks[c, w] & ~union[w]
                    while new:
                        low = new & (~new + np.uint64(1))
                        bit = _popcount(low - np.uint64(1))
                        rep[w * 64 + bit] = c
                        new ^= low
                    union[w] |= masks[c, w]
            else:
                for w in range(words):
                    union[w] |= masks[c, w]
        # odometer over assignments, least electronegative element fastest
        j = 0
        while j < k:
            i = order[j]
            idx[i] += 1
            if idx[i] < n_states[combo[i]]:
                break
            idx[i] = 0
            j += 1
        if j == k:
            return


@njit(cache=True, parallel=True)
def _count_range(
    start: np.int64,
    stop: np.int64,
    n: int,
    k: int,
    binom: np.ndarray,
    states: np.ndarray,
    n_states: np.ndarray,
    pauling: np.ndarray,
    masks: np.ndarray,
    nonempty: np.ndarray,
    qmin: int,
    radix: int,
) -> np.int64:
    words = masks.shape[1]
    n_chunks = (stop - start + CHUNK - 1) // CHUNK
    partial = np.zeros(n_chunks, dtype=np.int64)
    for ch in prange(n_chunks):
        combo = np.empty(k, dtype=np.int64)
        union = np.empty(words, dtype=np.uint64)
        rep = np.empty(1, dtype=np.int64)
        idx = np.empty(k, dtype=np.int64)
        order = np.empty(k, dtype=np.int64)
        first = start + ch * CHUNK
        last = min(first + CHUNK, stop)
        _unrank(first, n, k, binom, combo)
        total = np.int64(0)
        for _ in range(first, last):
            _union_mask(
                combo, states, n_states, pauling, masks, nonempty, qmin, radix, union, rep, False, idx, order
            )
            for w in range(words):
                total += _popcount(union[w])
            _advance(combo, n, k)
        partial[ch] = total
    return partial.sum()


def count_allowed(tables: FilterTables, start: int = 0, stop: int | None = None) -> int:
    """Number of allowed compositions among element tuples ``[start, stop)`` (by rank)."""
    n = len(tables.pool)
    if stop is None:
        stop = int(tables.binom[n, tables.arity])
    if stop <= start:
        return 0
    return int(
        _count_range(
            np.int64(start),
            np.int64(stop),
            n,
            tables.arity,
            tables.binom,
            tables.states,
            tables.n_states,
            tables.pauling,
            tables.masks,
            tables.nonempty,
            tables.qmin,
            tables.radix,
        )
    )


@njit(cache=True)
def _combos_range(start: np.int64, stop: np.int64, n: int, k: int, binom: np.ndarray) -> np.ndarray:
    combos = np.empty((stop - start, k), dtype=np.int64)
    combo = np.empty(k, dtype=np.int64)
    _unrank(start, n, k, binom, combo)
    for t in range(stop - start):
        combos[t] = combo
        _advance(combo, n, k)
    return combos


@njit(cache=True)
def _filter_combos(
    combos: np.ndarray,
    states: np.ndarray,
    n_states: np.ndarray,
    pauling: np.ndarray,
    masks: np.ndarray,
    nonempty: np.ndarray,
    qmin: int,
    radix: int,
    n_vectors: int,
) -> np.ndarray:
    reps = np.empty((combos.shape[0], n_vectors), dtype=np.int32)
    words = masks.shape[1]
    union = np.empty(words, dtype=np.uint64)
    rep = np.empty(words * 64, dtype=np.int64)
    k = combos.shape[1]
    idx = np.empty(k, dtype=np.int64)
    order = np.empty(k, dtype=np.int64)
    for t in range(combos.shape[0]):
        rep[:] = -1
        _union_mask(
            combos[t], states, n_states, pauling, masks, nonempty, qmin, radix, union, rep, True, idx, order
        )
        for v in range(n_vectors):
            reps[t, v] = rep[v]
    return reps


def combos_range(tables: FilterTables, start: int, stop: int) -> np.ndarray:
    """Pool indices ``int64 [T, k]`` of the element tuples with ranks ``[start, stop)``."""
    n = len(tables.pool)
    return _combos_range(np.int64(start), np.int64(stop), n, tables.arity, tables.binom)


def filter_tuples(tables: FilterTables, combos: np.ndarray) -> np.ndarray:
    """Filter element tuples given as pool indices ``[T, k]``.

    Returns, for every (tuple, coprime vector), the charge-tuple index of one neutral
    Pauling-passing assignment (see `decode_charges`), or -1 where the composition is
    forbidden: ``int32 [T, V]``.
    """
    return _filter_combos(
        np.ascontiguousarray(combos, dtype=np.int64),
        tables.states,
        tables.n_states,
        tables.pauling,
        tables.masks,
        tables.nonempty,
        tables.qmin,
        tables.radix,
        tables.n_vectors,
    )


def filter_range(tables: FilterTables, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Filter element tuples ``[start, stop)``: atomic numbers ``int64 [T, k]`` and the
    representative charge tuples of `filter_tuples`."""
    combos = combos_range(tables, start, stop)
    return tables.pool[combos], filter_tuples(tables, combos)


def decode_charges(tables: FilterTables, rep: np.ndarray) -> np.ndarray:
    """Charge-tuple indices -> oxidation states ``int8 [..., k]`` (0 where ``rep`` is -1)."""
    k = tables.arity
    out = np.zeros((*rep.shape, k), dtype=np.int8)
    valid = rep >= 0
    rest = np.where(valid, rep, 0).astype(np.int64)
    for i in range(k - 1, -1, -1):
        out[..., i] = np.where(valid, rest % tables.radix + tables.qmin, 0)
        rest //= tables.radix
    return out


def set_threads(n: int | None) -> None:
    """Limit numba's worker threads (``None`` keeps numba's default, all cores)."""
    if n:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
