"""Formula parsing (pymatgen) and canonical reduced formulas, one at a time or vectorised.

The canonical formula orders elements like pymatgen's ``reduced_formula`` (by electronegativity
``X``, then symbol) and always divides by the gcd, so ``Mg2O2`` and ``Li2O2`` read ``MgO`` and
``LiO`` (pymatgen keeps a few peroxide names; the composition space does not).
"""

from __future__ import annotations

import math
import warnings
from functools import cache, reduce

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crystalspace.chem.elements import MAX_Z, ChemistryError, element_table


@cache
def formula_rank() -> np.ndarray:
    """Position of each Z (index) in pymatgen's formula order: by ``X``, then symbol."""
    from pymatgen.core.periodic_table import Element

    symbols = element_table().symbols
    with warnings.catch_warnings():  # pymatgen warns for noble gases without Pauling X
        warnings.simplefilter("ignore")
        x = {z: Element(symbols[z]).X for z in range(1, MAX_Z + 1)}
    order = sorted(range(1, MAX_Z + 1), key=lambda z: (math.inf if math.isnan(x[z]) else x[z], symbols[z]))
    rank = np.zeros(MAX_Z + 1, dtype=np.int64)
    rank[order] = np.arange(1, MAX_Z + 1)
    return rank


MAX_AMOUNT = 2**53


def parse_formula(text: str) -> dict[int, int]:
    """Parse a formula into ``{Z: count}`` reduced by the gcd (``"Mg2O2"`` -> ``{12: 1, 8: 1}``).

    Raises `ChemistryError` for malformed formulas, unknown or >Lr elements, non-integer amounts
    and amounts above 2^53 (so every accepted amount is an exact integer).
    """
    from pymatgen.core import Composition

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comp = Composition(text.strip())
    except Exception as exc:  # pymatgen raises ValueError/KeyError/... for bad strings
        raise ChemistryError(f"malformed formula {text!r}: {exc}") from None
    if len(comp) == 0:
        raise ChemistryError(f"malformed formula {text!r}: no elements")
    counts: dict[int, int] = {}
    for el, amount in comp.items():
        z = getattr(el, "Z", None)
        if not isinstance(z, int) or not 1 <= z <= MAX_Z:
            symbol = getattr(el, "symbol", str(el))
            raise ChemistryError(f"unknown element {symbol!r} in formula {text!r} (expected H..Lr)")
        if abs(amount - round(amount)) > 1e-8 or round(amount) < 1:
            raise ChemistryError(f"non-integer amount {amount:g} of {el} in {text!r}")
        if round(amount) > MAX_AMOUNT:  # beyond it a float no longer holds every integer
            raise ChemistryError(f"amount {amount:g} of {el} in {text!r} is too large (at most 2^53)")
        counts[z] = counts.get(z, 0) + round(amount)
    g = reduce(math.gcd, counts.values())
    return {z: n // g for z, n in sorted(counts.items())}


def format_formula(counts: dict[int, int]) -> str:
    """Canonical formula of ``{Z: count}`` (counts are used as given)."""
    symbols = element_table().symbols
    rank = formula_rank()
    zs = sorted(counts, key=lambda z: rank[z])
    return "".join(symbols[z] + (str(counts[z]) if counts[z] != 1 else "") for z in zs)


def format_formulas(z: np.ndarray, n: np.ndarray) -> pa.Array:
    """Vectorised canonical formulas for rows of atomic numbers ``z`` and counts ``n`` (both
    ``[rows, k]``, 0-padded columns allowed) as an Arrow string array."""
    symbols = element_table().symbols
    rank = formula_rank()
    keys = np.where(z > 0, rank[z], np.iinfo(np.int64).max)
    order = np.argsort(keys, axis=1, kind="stable")
    z_sorted = np.take_along_axis(z, order, axis=1)
    n_sorted = np.take_along_axis(n, order, axis=1)
    sym_table = pa.array(list(symbols))  # index 0 is "" (absent element)
    max_n = int(n.max(initial=1))
    cnt_table = pa.array(["", ""] + [str(i) for i in range(2, max_n + 1)])
    parts = []
    for i in range(z.shape[1]):
        parts.append(pc.take(sym_table, pa.array(z_sorted[:, i].astype(np.int64))))
        parts.append(pc.take(cnt_table, pa.array(n_sorted[:, i].astype(np.int64))))
    return pc.binary_join_element_wise(*parts, "")
