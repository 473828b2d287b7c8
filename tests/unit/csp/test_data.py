"""The CSP dataset: entries read from the MP table, split by formula with no formula shared."""

from __future__ import annotations

import pytest
from _paths import DATA

from crystalspace.csp.data import CSPDataError, read_table, split_by_formula

TABLE = DATA / "csp_subset" / "mp_binary_le12sites_first300.csv.gz"


@pytest.fixture(scope="module")
def entries() -> list:
    return read_table(TABLE, max_atoms=12, limit=300)


def test_dataset_split_has_no_shared_formula(entries: list) -> None:
    assert all(len(e.structure) <= 12 for e in entries)
    train, test = split_by_formula(entries, 0.2)
    assert {e.formula for e in train}.isdisjoint({e.formula for e in test})
    assert len(train) + len(test) == len(entries)
    with pytest.raises(CSPDataError):
        read_table("/nonexistent.csv")
