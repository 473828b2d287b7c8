"""Seeded per-category samples of the lake (DuckDB) and the anion class of a composition.

Sampling is ``ORDER BY hash(formula, seed) LIMIT n`` inside each category: every composition
gets a pseudo-random rank that depends only on its formula and the seed, so a sample is the
same whatever the thread count, the shard layout or the order the files are read in (DuckDB's
``REPEATABLE`` reservoir sampling is only reproducible single-threaded). A category with fewer
rows than ``n`` is taken whole, and the sample says so.

Anion class. The anion of a composition is the most electronegative (Pauling) element that
carries a negative oxidation state in the lake's neutral assignment (allowed compositions), or
the most electronegative element outright (forbidden ones, which have no assignment). Its
group names the class: O -> oxide; S, Se, Te, Po -> chalcogenide; F, Cl, Br, I, At -> halide;
N, P, As, Sb, Bi -> pnictide; anything else (H, C, metals, ...) -> other. ZnO is an oxide,
CdS a chalcogenide, and an oxyhalide such as BiOCl (O-2, Cl-1) an oxide: O is the more
electronegative anion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from crystalspace.chem.elements import element_table
from crystalspace.lake.duck import connect
from crystalspace.lake.store import CATEGORIES
from crystalspace.maps.embeddings import MapsError

log = logging.getLogger(__name__)

ANION_CLASSES = ("oxide", "chalcogenide", "halide", "pnictide", "other")
_ANION_OF_Z = {8: "oxide", 16: "chalcogenide", 34: "chalcogenide", 52: "chalcogenide", 84: "chalcogenide"}
_ANION_OF_Z |= dict.fromkeys((9, 17, 35, 53, 85), "halide")
_ANION_OF_Z |= dict.fromkeys((7, 15, 33, 51, 83), "pnictide")

_COLUMNS = "arity, z1, z2, z3, z4, n1, n2, n3, n4, formula, category, ox1, ox2, ox3, ox4"


@dataclass
class Sample:
    """A per-category sample of one arity: the rows and what was taken whole."""

    arity: int
    rows: pd.DataFrame
    available: dict[str, int]
    taken_whole: list[str] = field(default_factory=list)


def connect_lake(lake: str) -> duckdb.DuckDBPyConnection:
    """`crystalspace.lake.duck.connect` without DuckDB's progress bar."""
    return connect(lake, enable_progress_bar=False)


def lake_arities(lake: str) -> dict[int, int]:
    """Rows stored per arity in ``lake``."""
    con = connect_lake(lake)
    return dict(con.execute("SELECT arity, count(*) FROM compositions GROUP BY arity").fetchall())


def sample_arity(lake: str, arity: int, per_category: int, seed: int = 0) -> Sample:
    """A seeded sample of up to ``per_category`` compositions per category of one arity."""
    if per_category < 1:
        raise MapsError(f"--per-category must be at least 1, got {per_category}")
    con = connect_lake(lake)
    available = dict(
        con.execute(
            "SELECT category, count(*) FROM compositions WHERE arity = ? GROUP BY category", [arity]
        ).fetchall()
    )
    if not available:
        have = ", ".join(str(a) for a in sorted(lake_arities(lake))) or "none"
        raise MapsError(f"the lake {lake} has no arity-{arity} compositions (it has arity {have})")
    parts, whole = [], []
    for category in CATEGORIES:
        count = available.get(category, 0)
        if count == 0:
            log.warning("arity %d: no %s compositions in the lake", arity, category)
            continue
        if count <= per_category:
            whole.append(category)
        parts.append(
            con.execute(
                f"SELECT {_COLUMNS} FROM compositions WHERE arity = ? AND category = ? "
                "ORDER BY hash(formula, ?::BIGINT), formula LIMIT ?",
                [arity, category, seed, per_category],
            ).df()
        )
    rows = pd.concat(parts, ignore_index=True)
    annotate(rows)
    return Sample(arity, rows, {c: available.get(c, 0) for c in CATEGORIES}, whole)


def annotate(rows: pd.DataFrame) -> None:
    """Add ``elements`` (symbols), ``oxidation`` (e.g. ``Zn+2 O-2``) and ``anion`` columns in place."""
    table = element_table()
    symbols = np.array(table.symbols, dtype=object)
    z = rows[["z1", "z2", "z3", "z4"]].to_numpy(dtype=np.intp)
    ox = rows[["ox1", "ox2", "ox3", "ox4"]].to_numpy(dtype=np.float64)  # NaN for forbidden rows
    rows["elements"] = [" ".join(symbols[zz[zz > 0]]) for zz in z]
    rows["oxidation"] = [
        " ".join(f"{symbols[a]}{int(q):+d}" for a, q in zip(zz, qq, strict=True) if a > 0 and q == q)
        for zz, qq in zip(z, ox, strict=True)
    ]
    rows["anion"] = anion_classes(z, ox)


def anion_classes(z: np.ndarray, ox: np.ndarray) -> list[str]:
    """Anion class per composition (see the module docstring for the rule)."""
    chi = element_table().pauling[z]
    chi = np.where(np.isnan(chi) | (z == 0), -np.inf, chi)
    assigned = ~np.isnan(ox).all(axis=1)
    negative = np.nan_to_num(ox, nan=0.0) < 0
    candidates = np.where(assigned[:, None], negative, z > 0)
    anion = np.take_along_axis(z, np.argmax(np.where(candidates, chi, -np.inf), axis=1)[:, None], 1)[:, 0]
    return [_ANION_OF_Z.get(int(a), "other") for a in anion]
