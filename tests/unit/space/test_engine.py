from __future__ import annotations

import numpy as np
import pytest

from crystalspace.chem.elements import element_table
from crystalspace.chem.formula import format_formula, format_formulas
from crystalspace.config import ConfigError
from crystalspace.space.combinatorics import (
    coprime_vectors,
    n_compositions,
    rank_combination,
    unrank_combination,
)
from crystalspace.space.config import make_space_config
from crystalspace.space.engine import PUBLISHED_COUNTS as PUBLISHED
from crystalspace.space.engine import Space
from crystalspace.space.kernels import filter_range


@pytest.fixture(scope="module")
def space():
    return Space.load(make_space_config(overrides={"arities": "2,3"}))


def test_closed_form_counts():
    for k, (total, _) in PUBLISHED.items():
        assert n_compositions(103, k, 8) == total
    assert len(coprime_vectors(2, 8)) == 43


def test_unrank_roundtrip():
    for rank in (0, 1, 17, 5000, 176_850):
        combo = unrank_combination(rank, 103, 3)
        assert rank_combination(combo, 103) == rank
    assert unrank_combination(0, 103, 4) == (0, 1, 2, 3)


@pytest.mark.parametrize("arity", [2, 3])
def test_published_allowed_counts(space, arity):
    counts = space.count(arity)
    assert (counts.compositions, counts.allowed) == PUBLISHED[arity]
    assert counts.standard + counts.missing == counts.allowed
    assert counts.standard + counts.interesting == counts.known
    assert counts.allowed + counts.interesting + counts.unlikely == counts.compositions


@pytest.mark.slow
def test_published_quaternary_count(space):
    counts = space.count(4)
    assert (counts.compositions, counts.allowed) == PUBLISHED[4]


def _smact_allowed(symbols, limit=8):
    from smact import Element
    from smact.screening import smact_filter

    try:
        out = smact_filter(
            [Element(s) for s in symbols],
            threshold=limit,
            species_unique=False,
            oxidation_states_set="smact14",
        )
    except ValueError:  # an element without oxidation states
        return set()
    return {tuple(ratio) for _, ratio in out}


def test_agrees_with_smact_filter_composition_for_composition(space):
    rng = np.random.default_rng(7)
    symbols = element_table().symbols
    for arity in (2, 3):
        tables = space.tables(arity)
        total = int(tables.binom[103, arity])
        for rank in rng.integers(0, total, size=25):
            z, reps = filter_range(tables, int(rank), int(rank) + 1)
            ours = {tuple(int(x) for x in tables.vectors[v]) for v in np.flatnonzero(reps[0] >= 0)}
            assert ours == _smact_allowed([symbols[q] for q in z[0]]), z[0]


def test_paper_table1_examples(space):
    # Table 1 of the paper: Zn-O, Li-Zn-O, Li-Zn-Sn-O
    assert space.explain("ZnO").category == "standard"
    assert space.explain("ZnO2").allowed
    zn2o = space.explain("Zn2O")
    assert zn2o.allowed
    assert not zn2o.known
    assert zn2o.category == "missing"
    assert space.explain("LiZn4SnO8").category == "interesting"
    assert space.explain("Li2ZnSn3O8").allowed


def test_explain_reasons(space):
    assert "no oxidation states" in space.explain("HeO").reason
    assert "Pauling" in space.explain("PmO").reason  # Pm has no Pauling value
    far = space.explain("Fe9O")
    assert far.outside
    assert "limit" in far.outside[0]
    assert space.explain("Mg2O2").formula == "MgO"


def test_explain_agrees_with_kernel(space):
    tables = space.tables(3)
    z, reps = filter_range(tables, 12_345, 12_348)
    symbols = element_table().symbols
    for t in range(3):
        for v in range(0, tables.n_vectors, 37):
            counts = {int(z[t, i]): int(tables.vectors[v, i]) for i in range(3)}
            python_verdict = space.explain(format_formula(counts))
            assert python_verdict.allowed == (reps[t, v] >= 0), [symbols[q] for q in z[t]]
            neutral_ok = any(n and ok for _, n, ok in python_verdict.assignments)
            assert neutral_ok == python_verdict.allowed


def test_vectorised_formulas_match_pymatgen():
    from pymatgen.core import Composition

    rng = np.random.default_rng(3)
    z = np.sort(np.stack([rng.choice(np.arange(1, 104), 3, replace=False) for _ in range(200)]), axis=1)
    n = rng.integers(1, 9, size=z.shape)
    fast = format_formulas(z, n).to_pylist()
    for row, f in enumerate(fast):
        counts = {int(a): int(b) for a, b in zip(z[row], n[row], strict=True)}
        assert f == format_formula(counts)
        symbols = element_table().symbols
        comp = Composition({symbols[a]: b for a, b in counts.items()})
        if "He" not in f and "Ne" not in f and "Ar" not in f:  # pymatgen has no X for these
            assert Composition(f) == comp


def test_shard_counts_add_up(space):
    shards = space.shards(2)
    assert sum(s.stop - s.start for s in shards) == 5253
    totals = np.zeros(4, dtype=np.int64)
    for shard in shards[:20]:
        table, c = space.build_shard(shard)
        assert table.num_rows == c.compositions == c.tuples * 43
        cats = table.column("category").to_pylist()
        assert cats.count("standard") == c.standard
        assert cats.count("unlikely") == c.unlikely
        allowed = table.column("allowed").to_numpy(zero_copy_only=False)
        ox = table.column("ox1").to_numpy(zero_copy_only=False)
        assert np.isnan(ox[~allowed]).all()
        assert not np.isnan(ox[allowed]).any()
        totals += [c.standard, c.missing, c.interesting, c.unlikely]
    assert totals.sum() == sum(s.stop - s.start for s in shards[:20]) * 43


def test_recorded_assignment_is_neutral_and_ordered(space):
    shard = next(s for s in space.shards(3) if s.z1 == 3)
    table, _ = space.build_shard(shard)
    df = table.to_pandas()
    df = df[df.allowed]
    charge = df.ox1 * df.n1 + df.ox2 * df.n2 + df.ox3 * df.n3
    assert (charge == 0).all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"arities": "5"}, "arity"),
        ({"arities": "two"}, "comma-separated"),
        ({"limit": 0}, "limit"),
        ({"limit": 99}, "limit"),
    ],
)
def test_bad_config(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_space_config(overrides=overrides)
