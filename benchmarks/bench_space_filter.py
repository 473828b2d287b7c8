"""Benchmark: our SMACT filter against SMACT's own ``smact_filter`` on random element tuples.

    python benchmarks/bench_space_filter.py                          # 300 ternary + 100 quaternary
    python benchmarks/bench_space_filter.py --ternary 50 --quaternary 10 --seed 7

Draws a reproducible sample of element tuples from Z 1..103, runs
``smact.screening.smact_filter(els, threshold=LIMIT, species_unique=False,
oxidation_states_set=SET)`` on each (a ValueError for an element without oxidation states counts
as nothing allowed) and our numba kernels on the same tuples, checks that both allow exactly the
same compositions (element tuple, reduced stoichiometry), and prints a table of times,
throughputs (compositions examined per second) and speed-ups over SMACT per tuple:

* ``filter_range`` one tuple at a time (Python call per tuple, as a caller filtering one chemical
  system would use it) and ``filter_tuples`` on the whole sample at once;
* ``count_allowed`` on each sampled tuple (rank range of length 1, one numba thread);
* ``count_allowed`` over the whole space of the arity: the way the engine runs at scale.

Exit status 1 if any composition disagrees.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import cast

import numba
import numpy as np
import smact
from smact.screening import smact_filter

from crystalspace.chem.elements import element_table
from crystalspace.chem.oxidation import load_oxidation_set
from crystalspace.space.combinatorics import rank_combination, unrank_combination
from crystalspace.space.kernels import (
    FilterTables,
    count_allowed,
    filter_range,
    filter_tables,
    filter_tuples,
)

POOL = tuple(range(1, 104))
Composition = tuple[tuple[int, ...], tuple[int, ...]]  # (atomic numbers, reduced stoichiometry)


def sample_tuples(arity: int, size: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``size`` distinct element tuples (pool indices, ascending), uniformly at random."""
    total = math.comb(len(POOL), arity)
    ranks = rng.choice(total, size=min(size, total), replace=False)
    return [unrank_combination(int(r), len(POOL), arity) for r in np.sort(ranks)]


def run_smact(combos: list[tuple[int, ...]], ox_set: str, limit: int) -> tuple[list[set[Composition]], float]:
    """SMACT's allowed compositions per tuple and the time spent inside ``smact_filter``."""
    symbols = element_table().symbols
    elements = {z: smact.Element(symbols[z]) for z in POOL}
    out: list[set[Composition]] = []
    spent = 0.0
    for combo in combos:
        zs = tuple(POOL[i] for i in combo)
        els = [elements[z] for z in zs]
        t0 = time.perf_counter()
        try:
            found = smact_filter(els, threshold=limit, species_unique=False, oxidation_states_set=ox_set)
        except ValueError:  # an element without oxidation states in this set
            found = []
        spent += time.perf_counter() - t0
        pairs = cast("list[tuple[tuple[str, ...], tuple[int, ...]]]", found)  # (symbols, ratio)
        out.append({(zs, tuple(int(n) for n in ratio)) for _, ratio in pairs})
    return out, spent


def run_ours(tables: FilterTables, combos: list[tuple[int, ...]]) -> tuple[list[set[Composition]], float]:
    """Our allowed compositions per tuple via ``filter_range`` on single ranks, and its time."""
    n = len(POOL)
    ranks = [rank_combination(c, n) for c in combos]
    out: list[set[Composition]] = []
    t0 = time.perf_counter()
    results = [filter_range(tables, r, r + 1) for r in ranks]
    spent = time.perf_counter() - t0
    for zs, reps in results:
        key = tuple(int(z) for z in zs[0])
        out.append({(key, tuple(int(x) for x in tables.vectors[v])) for v in np.flatnonzero(reps[0] >= 0)})
    return out, spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ternary", type=int, default=300, help="ternary tuples in the sample")
    parser.add_argument("--quaternary", type=int, default=100, help="quaternary tuples in the sample")
    parser.add_argument("--binary", type=int, default=0, help="binary tuples in the sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ox-set", default="smact14", help="oxidation-state set (SMACT's names)")
    parser.add_argument("--limit", type=int, default=8, help="largest stoichiometric factor")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    ox = load_oxidation_set(args.ox_set)
    lines: list[tuple[str, str, float, float, float, str]] = []
    mismatches = 0
    for arity, size in ((2, args.binary), (3, args.ternary), (4, args.quaternary)):
        if size <= 0:
            continue
        combos = sample_tuples(arity, size, rng)
        tables = filter_tables(ox, arity, args.limit, POOL)
        n_vec = tables.n_vectors
        n_tuples = len(combos)
        examined = n_tuples * n_vec
        count_allowed(tables, 0, 1)  # load / compile the numba kernels outside the timings
        filter_range(tables, 0, 1)

        theirs, smact_s = run_smact(combos, args.ox_set, args.limit)
        ours, ours_s = run_ours(tables, combos)
        for combo, a, b in zip(combos, theirs, ours, strict=True):
            if a != b:
                mismatches += 1
                zs = tuple(POOL[i] for i in combo)
                print(f"MISMATCH {zs}: smact {len(a)}, ours {len(b)}; e.g. {sorted(a ^ b)[:3]}")
        n_allowed = sum(len(s) for s in theirs)

        batch = np.array(combos, dtype=np.int64)
        t0 = time.perf_counter()
        reps = filter_tuples(tables, batch)
        batch_s = time.perf_counter() - t0
        if not np.array_equal((reps >= 0).sum(axis=1), [len(s) for s in theirs]):
            mismatches += 1
            print("MISMATCH filter_tuples on the sample")

        n = len(POOL)
        ranks = [rank_combination(c, n) for c in combos]
        threads = numba.get_num_threads()
        numba.set_num_threads(1)  # one tuple per call: a parallel launch would only add latency
        t0 = time.perf_counter()
        counted = sum(count_allowed(tables, r, r + 1) for r in ranks)
        count_s = time.perf_counter() - t0
        numba.set_num_threads(threads)
        if counted != n_allowed:
            mismatches += 1
            print(f"MISMATCH count_allowed on the sample: {counted:,} vs smact {n_allowed:,}")

        total_tuples = math.comb(n, arity)
        t0 = time.perf_counter()
        count_allowed(tables)
        scale_s = time.perf_counter() - t0

        smact_per = smact_s / n_tuples
        size_s = f"{n_tuples} x {n_vec} = {examined:,}"
        rows = [
            ("smact_filter, per tuple", size_s, smact_s, smact_per),
            ("ours filter_range, per tuple", size_s, ours_s, ours_s / n_tuples),
            ("ours filter_tuples, whole sample", size_s, batch_s, batch_s / n_tuples),
            ("ours count_allowed, per tuple (1 thr)", size_s, count_s, count_s / n_tuples),
            (
                "ours count_allowed, whole arity",
                f"{total_tuples:,} x {n_vec} = {total_tuples * n_vec:,}",
                scale_s,
                scale_s / total_tuples,
            ),
        ]
        nan = math.nan
        lines.append((f"arity {arity}: {n_allowed:,} allowed in sample", "", nan, nan, nan, ""))
        for what, sz, secs, per_tuple in rows:
            ratio = f"{smact_per / per_tuple:,.0f}x"
            lines.append((what, sz, secs, per_tuple * 1e6, n_vec / per_tuple, ratio))

    load = os.getloadavg()[0]
    print(f"\nmachine: {os.cpu_count()} CPUs (load {load:.1f}); set {args.ox_set}, limit {args.limit}")
    print(f"sample: seed {args.seed}, tuples drawn uniformly from Z 1..103")
    print(
        f"{'what':38} {'size (tuples x vectors)':>34} {'time s':>9} {'us/tuple':>10} "
        f"{'compositions/s':>15} {'vs smact':>9}"
    )
    for what, sz, secs, micros, rate, ratio in lines:
        if math.isnan(secs):
            print(what)
            continue
        print(f"{what:38} {sz:>34} {secs:9.4f} {micros:10.2f} {rate:15,.0f} {ratio:>9}")
    print("agreement: " + ("all compositions identical" if not mismatches else f"{mismatches} MISMATCHES"))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
