"""The chemical-space engine: exact counts, labelled shards, and per-composition explanations.

Everything here is pure computation on one process; :mod:`crystalspace.space.build` spreads
shards over Ray and writes them to the lake.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crystalspace.chem.elements import MAX_Z, element_table
from crystalspace.chem.formula import format_formula, format_formulas, parse_formula
from crystalspace.chem.oxidation import OxidationSet, load_oxidation_set
from crystalspace.lake.store import CATEGORIES, SCHEMA, Shard, ShardCounts
from crystalspace.space.combinatorics import MAX_ARITY, coprime_vectors, n_element_tuples
from crystalspace.space.config import SpaceConfig
from crystalspace.space.kernels import (
    FilterTables,
    combos_range,
    count_allowed,
    decode_charges,
    filter_tables,
    filter_tuples,
)
from crystalspace.space.known import KnownSet, load_known

STANDARD, MISSING, INTERESTING, UNLIKELY = range(4)

#: Park, Onwuli, Butler, Walsh, Faraday Discuss. 2024: (unique combinations, allowed) per arity
#: for Z 1..103, factors 1..8 and the smact14 oxidation states.
PUBLISHED_COUNTS = {
    2: (225_879, 13_464),
    3: (77_637_589, 10_779_441),
    4: (16_902_534_325, 2_909_434_982),
}


@dataclass(frozen=True)
class ArityCounts:
    """Exact counts of one arity: unique compositions, allowed, known and the four categories."""

    arity: int
    tuples: int
    compositions: int
    allowed: int
    known: int
    standard: int
    missing: int
    interesting: int
    unlikely: int
    seconds: float = 0.0


@dataclass
class Space:
    """A configured composition space: element pool, oxidation set, reference set."""

    config: SpaceConfig
    ox: OxidationSet
    known: KnownSet
    _pool_index: np.ndarray = field(repr=False)

    @classmethod
    def load(cls, config: SpaceConfig) -> Space:
        pool_index = np.full(MAX_Z + 1, -1, dtype=np.int64)
        pool_index[list(config.pool)] = np.arange(len(config.pool))
        return cls(config, load_oxidation_set(config.ox_set), load_known(config.reference), pool_index)

    @property
    def is_published_setup(self) -> bool:
        """True for the paper's setup (all 103 elements, factors 1..8, smact14)."""
        return len(self.config.pool) == MAX_Z and self.config.limit == 8 and self.ox.name == "smact14"

    def tables(self, arity: int) -> FilterTables:
        return filter_tables(self.ox, arity, self.config.limit, self.config.pool)

    # -- counting -------------------------------------------------------------------------

    def count(self, arity: int, device: str | None = None) -> ArityCounts:
        """Exact counts for one arity; ``device`` = ``"cuda"`` uses the torch kernel."""
        t0 = time.perf_counter()
        tables = self.tables(arity)
        if device and device != "cpu":
            from crystalspace.space.kernels_torch import count_allowed_torch

            allowed = count_allowed_torch(tables, device=device)
        else:
            allowed = count_allowed(tables)
        known_allowed = self.known_allowed(arity)
        n_known = len(known_allowed)
        standard = int(known_allowed.sum())
        tuples = n_element_tuples(len(self.config.pool), arity)
        total = tuples * tables.n_vectors
        return ArityCounts(
            arity=arity,
            tuples=tuples,
            compositions=total,
            allowed=allowed,
            known=n_known,
            standard=standard,
            missing=allowed - standard,
            interesting=n_known - standard,
            unlikely=total - allowed - (n_known - standard),
            seconds=time.perf_counter() - t0,
        )

    def known_in_space(self, arity: int) -> tuple[np.ndarray, np.ndarray]:
        """Known compositions of ``arity`` inside this space: ``(z, n)``, each ``[M, arity]``."""
        z = self.known.z[:, :arity].astype(np.int64)
        n = self.known.n[:, :arity].astype(np.int64)
        keep = (self.known.z[:, arity:] == 0).all(axis=1) if arity < MAX_ARITY else np.ones(len(z), bool)
        keep &= (z > 0).all(axis=1) & (n <= self.config.limit).all(axis=1)
        keep &= (self._pool_index[z] >= 0).all(axis=1)
        return z[keep], n[keep]

    def known_allowed(self, arity: int) -> np.ndarray:
        """For every known composition in the space (order of `known_in_space`): allowed?"""
        z, n = self.known_in_space(arity)
        if len(z) == 0:
            return np.zeros(0, dtype=bool)
        combos = self._pool_index[z]
        uniq, inverse = np.unique(combos, axis=0, return_inverse=True)
        reps = filter_tuples(self.tables(arity), uniq)
        vec = vector_index(arity, self.config.limit)[tuple(n.T)]
        return reps[inverse.ravel(), vec] >= 0

    # -- shards ---------------------------------------------------------------------------

    def shards(self, arity: int, shard_rows: int | None = None) -> list[Shard]:
        """Shard plan: per first element, rank ranges of about ``shard_rows`` compositions
        (default: the configured ``shard_rows``)."""
        pool = self.config.pool
        n = len(pool)
        rows = shard_rows or self.config.shard_rows
        per = max(1, rows // len(coprime_vectors(arity, self.config.limit)))
        out = []
        start = 0
        for a in range(n - arity + 1):
            count = math.comb(n - a - 1, arity - 1)
            for s in range(start, start + count, per):
                out.append(Shard(arity, pool[a], s, min(s + per, start + count)))
            start += count
        return out

    def build_shard(self, shard: Shard) -> tuple[pa.Table, ShardCounts]:
        """Filter and label one shard: its lake rows and its exact counts."""
        t0 = time.perf_counter()
        k = shard.arity
        tables = self.tables(k)
        combos = combos_range(tables, shard.start, shard.stop)
        reps = filter_tuples(tables, combos).ravel()
        n_vec = tables.n_vectors
        z = np.repeat(tables.pool[combos], n_vec, axis=0)
        n = np.tile(tables.vectors.astype(np.int64), (len(combos), 1))
        allowed = reps >= 0
        known = self.known.contains(_pad(z), _pad(n))
        category = np.where(
            allowed, np.where(known, STANDARD, MISSING), np.where(known, INTERESTING, UNLIKELY)
        )
        cat_counts = np.bincount(category, minlength=4)
        if self.config.rows_for(k) == "allowed":
            keep = allowed | known
            z, n, reps, allowed, known, category = (a[keep] for a in (z, n, reps, allowed, known, category))
        table = self._rows_table(tables, z, n, reps, allowed, known, category)
        counts = ShardCounts(
            arity=k,
            z1=shard.z1,
            shard=shard.start,
            tuples=shard.stop - shard.start,
            compositions=(shard.stop - shard.start) * n_vec,
            allowed=int(cat_counts[STANDARD] + cat_counts[MISSING]),
            known=int(cat_counts[STANDARD] + cat_counts[INTERESTING]),
            standard=int(cat_counts[STANDARD]),
            missing=int(cat_counts[MISSING]),
            interesting=int(cat_counts[INTERESTING]),
            unlikely=int(cat_counts[UNLIKELY]),
            rows=table.num_rows,
            seconds=time.perf_counter() - t0,
        )
        return table, counts

    def _rows_table(
        self,
        tables: FilterTables,
        z: np.ndarray,
        n: np.ndarray,
        reps: np.ndarray,
        allowed: np.ndarray,
        known: np.ndarray,
        category: np.ndarray,
    ) -> pa.Table:
        zp, np_, ox = _pad(z), _pad(n), decode_charges(tables, reps)
        cols: dict[str, pa.Array] = {}
        for i in range(1, 4):
            cols[f"z{i + 1}"] = pa.array(zp[:, i].astype(np.uint8))
        for i in range(4):
            cols[f"n{i + 1}"] = pa.array(np_[:, i].astype(np.uint8))
        cols["formula"] = format_formulas(z, n)
        cols["allowed"] = pa.array(allowed)
        cols["known"] = pa.array(known)
        cols["category"] = pc.take(pa.array(CATEGORIES), pa.array(category.astype(np.int64)))
        for i in range(4):
            values = ox[:, i] if i < tables.arity else np.zeros(len(reps), np.int8)
            cols[f"ox{i + 1}"] = pa.array(values, mask=~allowed | (i >= tables.arity))
        cols["ox_set"] = pa.repeat(pa.scalar(self.ox.tag), len(reps))
        return pa.table(cols, schema=SCHEMA)

    # -- explanations ---------------------------------------------------------------------

    def explain(self, formula: str) -> Explanation:
        """Why one composition is allowed or not, assignment by assignment."""
        counts = parse_formula(formula)
        table = element_table()
        zs = tuple(counts)
        ns = tuple(counts[z] for z in zs)
        k = len(zs)
        outside = []
        if not 2 <= k <= MAX_ARITY:
            outside.append(f"{k} element(s); the space holds 2..{MAX_ARITY}")
        if max(ns) > self.config.limit:
            outside.append(f"factor {max(ns)} exceeds the stoichiometry limit {self.config.limit}")
        not_in_pool = [table.symbols[z] for z in zs if z not in self.config.pool]
        if not_in_pool:
            outside.append(f"{','.join(not_in_pool)} not in the element pool")
        assignments = []
        for qs in itertools.product(*(self.ox.states[z] for z in zs)):
            neutral = sum(q * m for q, m in zip(qs, ns, strict=True)) == 0
            assignments.append((qs, bool(neutral), _pauling_ok(qs, [float(table.pauling[z]) for z in zs])))
        allowed = any(neutral and ok for _, neutral, ok in assignments)
        if not outside:  # the kernel is the single source of truth inside the space
            rep = filter_tuples(self.tables(k), self._pool_index[np.array([zs])])
            allowed = bool(rep[0, vector_index(k, self.config.limit)[ns]] >= 0)
        z_arr = np.array([list(zs) + [0] * (4 - k)]) if k <= 4 else None
        n_arr = np.array([list(ns) + [0] * (4 - k)]) if k <= 4 else None
        known = bool(z_arr is not None and n_arr is not None and self.known.contains(z_arr, n_arr)[0])
        return Explanation(
            formula=format_formula(counts),
            elements=[(table.symbols[z], z, float(table.pauling[z]), self.ox.states[z]) for z in zs],
            counts=ns,
            ox_set=self.ox.tag,
            reference=self.known.tag,
            outside=outside,
            assignments=assignments,
            allowed=allowed,
            known=known,
        )


@dataclass(frozen=True)
class Explanation:
    """The verdict on one composition and the evidence for it."""

    formula: str
    elements: list[tuple[str, int, float, tuple[int, ...]]]  # symbol, Z, Pauling, states
    counts: tuple[int, ...]
    ox_set: str
    reference: str
    outside: list[str]
    assignments: list[tuple[tuple[int, ...], bool, bool]]  # charges, neutral, Pauling ok
    allowed: bool
    known: bool

    @property
    def category(self) -> str:
        return CATEGORIES[
            (STANDARD if self.known else MISSING)
            if self.allowed
            else (INTERESTING if self.known else UNLIKELY)
        ]

    @property
    def reason(self) -> str:
        """One sentence that says why."""
        neutral = [a for a in self.assignments if a[1]]
        missing_en = [s for s, _, en, _ in self.elements if math.isnan(en)]
        no_states = [s for s, _, _, st in self.elements if not st]
        if self.allowed:
            return f"{len([a for a in neutral if a[2]])} charge-neutral assignment(s) pass the Pauling test"
        if no_states:
            return f"{', '.join(no_states)} has no oxidation states in {self.ox_set}"
        if missing_en:
            return f"{', '.join(missing_en)} has no Pauling electronegativity, so the Pauling test fails"
        if not neutral:
            return "no assignment of oxidation states is charge neutral"
        return f"all {len(neutral)} charge-neutral assignment(s) fail the Pauling test"


def _pauling_ok(charges: tuple[int, ...], pauling: list[float]) -> bool:
    """SMACT's test: every cation strictly less electronegative than every anion; no NaN."""
    if any(math.isnan(p) for p in pauling):
        return False
    cations = [p for q, p in zip(charges, pauling, strict=True) if q > 0]
    anions = [p for q, p in zip(charges, pauling, strict=True) if q < 0]
    return not cations or not anions or max(cations) < min(anions)


def _pad(a: np.ndarray) -> np.ndarray:
    return np.pad(a, ((0, 0), (0, MAX_ARITY - a.shape[1])))


@cache
def vector_index(arity: int, limit: int) -> np.ndarray:
    """Dense lookup ``[limit+1]*arity`` from a coprime vector to its index (-1 elsewhere)."""
    lookup = np.full((limit + 1,) * arity, -1, dtype=np.int64)
    vecs = coprime_vectors(arity, limit).astype(np.int64)
    lookup[tuple(vecs.T)] = np.arange(len(vecs))
    return lookup
