"""The torch counting kernel agrees with the numba kernel (CPU torch; CUDA where present)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crystalspace.chem.oxidation import load_oxidation_set  # noqa: E402
from crystalspace.space.kernels import (  # noqa: E402
    FilterTables,
    count_allowed,
    filter_range,
    filter_tables,
)
from crystalspace.space.kernels_torch import (  # noqa: E402
    allowed_per_tuple_torch,
    count_allowed_torch,
)

POOL = tuple(range(1, 104))
PUBLISHED_ALLOWED = {2: 13_464, 3: 10_779_441}


def _tables(arity: int, ox_set: str = "smact14") -> FilterTables:
    return filter_tables(load_oxidation_set(ox_set), arity, 8, POOL)


@pytest.mark.parametrize("arity", [2, 3])
def test_full_arity_matches_numba(arity: int) -> None:
    tables = _tables(arity)
    assert count_allowed_torch(tables, device="cpu") == count_allowed(tables) == PUBLISHED_ALLOWED[arity]


@pytest.mark.parametrize("start", [0, 1_234_567, 4_401_275])
def test_quaternary_range_matches_numba(start: int) -> None:
    tables = _tables(4)
    stop = start + 20_000
    assert count_allowed_torch(tables, start, stop, device="cpu") == count_allowed(tables, start, stop)


def test_per_tuple_counts_and_batching() -> None:
    tables = _tables(3)
    start, stop = 40_000, 52_000
    _, reps = filter_range(tables, start, stop)
    expected = (reps >= 0).sum(axis=1)
    per = allowed_per_tuple_torch(tables, start, stop, device="cpu", batch_tuples=777, gather_rows=4096)
    np.testing.assert_array_equal(per.numpy(), expected)


def test_zero_oxidation_states() -> None:
    """The ``wiki`` set lists charge 0 for many elements (neither cation nor anion)."""
    tables = _tables(3, "wiki")
    assert count_allowed_torch(tables, 0, 30_000, device="cpu") == count_allowed(tables, 0, 30_000)


def test_empty_range() -> None:
    assert count_allowed_torch(_tables(2), 10, 10, device="cpu") == 0


@pytest.mark.gpu
def test_cuda_matches_numba() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    tables = _tables(3)
    assert count_allowed_torch(tables, device="cuda") == PUBLISHED_ALLOWED[3]
    tables = _tables(4)
    start, stop = 2_000_000, 2_200_000
    assert count_allowed_torch(tables, start, stop, device="cuda") == count_allowed(tables, start, stop)
