"""`map build`: sample the lake, embed, project to 2-D, measure separation, save to ``maps/``.

Files written under ``out`` (each replaced atomically, only once everything is computed):

- ``points.parquet``: one row per composition × embedding × method × arity with ``x``, ``y``,
  ``formula``, ``category``, ``anion``, ``elements``, ``oxidation``;
- ``separation.csv``: category separation per map and in the full embedding space;
- ``dropped.csv``: compositions an embedding cannot represent (it lacks an element), per arity;
- ``element_frequency.csv``: how often each element occurs in allowed binary compositions;
- ``_maps.json``: what was asked, what the lake offered, categories taken whole, timings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crystalspace import __version__
from crystalspace.chem.elements import element_table
from crystalspace.maps.embeddings import MapsError, composition_embedding, load_embedding, reference_embedding
from crystalspace.maps.reduce import reduce
from crystalspace.maps.sample import Sample, connect_lake, lake_arities, sample_arity
from crystalspace.maps.separation import chance, knn_accuracy, silhouette
from crystalspace.runtime import progress
from crystalspace.storage import atomic_path

log = logging.getLogger(__name__)

POINTS = "points.parquet"
SEPARATION = "separation.csv"
DROPPED = "dropped.csv"
FREQUENCY = "element_frequency.csv"
MANIFEST = "_maps.json"
CHECK_ROWS = 50
CHECK_RTOL = 1e-4


@dataclass
class MapsReport:
    """What `build_maps` did."""

    out: Path
    samples: dict[int, Sample]
    separation: pd.DataFrame
    dropped: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def lakes_for_arities(lakes: Sequence[str], arities: Sequence[int]) -> dict[int, str]:
    """Which lake each arity is read from (the first that has it); a `MapsError` if none has it."""
    if not lakes:
        raise MapsError("give at least one --lake")
    have = {lake: lake_arities(lake) for lake in lakes}
    chosen: dict[int, str] = {}
    for arity in arities:
        for lake in lakes:
            if have[lake].get(arity):
                chosen[arity] = lake
                break
        else:
            offer = "; ".join(
                f"{lake} has arity {', '.join(map(str, sorted(a))) or 'none'}" for lake, a in have.items()
            )
            raise MapsError(
                f"arity {arity} is in none of the lakes ({offer}); build it, e.g. `crystalspace space "
                f"build --arity {arity} --elements Li,Na,K,Mg,Ca,Zn,Fe,Cu,Al,Si,Sn,N,P,O,S,Se,F,Cl,Br,I "
                f"--lake lake{arity}/`, and pass it as another --lake"
            )
    return chosen


def check_against_reference(sample: Sample, name: str) -> float:
    """Largest relative difference to ``CompositionalEmbedding`` on the first rows of a sample."""
    rows = sample.rows.iloc[:CHECK_ROWS]
    vec, ok = composition_embedding(_zn(rows, "z"), _zn(rows, "n"), load_embedding(name))
    if not ok.any():
        return 0.0
    ref = reference_embedding(list(rows["formula"][ok]), name)
    err = float(np.max(np.abs(vec - ref) / (np.abs(ref).max(axis=1, keepdims=True) + 1e-12)))
    if err > CHECK_RTOL:
        raise RuntimeError(f"{name}: batched embedding differs from CompositionalEmbedding by {err:.2e}")
    return err


def _zn(rows: pd.DataFrame, prefix: str) -> np.ndarray:
    return rows[[f"{prefix}{i}" for i in range(1, 5)]].to_numpy(dtype=np.int64)


def build_maps(
    lakes: Sequence[str],
    out: str | Path,
    *,
    arities: Sequence[int] = (2, 3),
    embeddings: Sequence[str] = ("magpie", "mat2vec", "megnet16", "oliynyk", "skipatom", "random"),
    methods: Sequence[str] = ("pca", "tsne", "umap"),
    per_category: int = 3000,
    seed: int = 0,
) -> MapsReport:
    """Build every embedding × method × arity map and its separation numbers into ``out``."""
    t_start = time.perf_counter()
    source = lakes_for_arities(lakes, arities)
    for name in embeddings:
        load_embedding(name)  # unknown names fail before any work
    report = MapsReport(Path(out), {}, pd.DataFrame(), pd.DataFrame())
    for arity in arities:
        t0 = time.perf_counter()
        sample = sample_arity(source[arity], arity, per_category, seed)
        report.samples[arity] = sample
        report.seconds[f"sample arity {arity}"] = time.perf_counter() - t0
        for cat in sample.taken_whole:
            report.notes.append(
                f"arity {arity}: {cat} has {sample.available[cat]:,} compositions (< {per_category:,}); taken whole"
            )
    points, separation, dropped, checks = [], [], [], {}
    steps = len(arities) * len(embeddings) * len(methods)
    with progress(steps, "maps", unit="points") as bar:
        for arity, sample in report.samples.items():
            for name in embeddings:
                checks[f"{name} arity {arity}"] = check_against_reference(sample, name)
                vec, ok = composition_embedding(
                    _zn(sample.rows, "z"), _zn(sample.rows, "n"), load_embedding(name)
                )
                rows = sample.rows[ok].reset_index(drop=True)
                dropped.append(_dropped(arity, name, sample.rows, ok))
                labels = rows["category"].to_numpy()
                full = {
                    "knn_full": knn_accuracy(vec, labels, seed),
                    "silhouette_full": silhouette(vec, labels, seed),
                }
                for method in methods:
                    t0 = time.perf_counter()
                    xy = reduce(vec, method, seed)
                    took = time.perf_counter() - t0
                    report.seconds[f"{method} {name} arity {arity}"] = took
                    points.append(_points(rows, arity, name, method, xy))
                    separation.append(
                        {
                            "arity": arity,
                            "embedding": name,
                            "method": method,
                            "points": len(rows),
                            "chance": chance(labels),
                            "knn_2d": knn_accuracy(xy, labels, seed),
                            **full,
                            "silhouette_2d": silhouette(xy, labels, seed),
                            "knn_anion_2d": knn_accuracy(xy, rows["anion"].to_numpy(), seed),
                            "seconds": took,
                        }
                    )
                    bar.advance(len(rows))
    report.separation = pd.DataFrame(separation)
    report.dropped = pd.DataFrame(dropped)
    frequency = element_frequency(source[2]) if 2 in source else None
    report.seconds["total"] = time.perf_counter() - t_start
    _write(report, pd.concat(points, ignore_index=True), frequency, source, checks, per_category, seed)
    return report


def _dropped(arity: int, name: str, rows: pd.DataFrame, ok: np.ndarray) -> dict[str, Any]:
    em = load_embedding(name)
    z = _zn(rows[~ok], "z")
    lacking = sorted({int(v) for v in np.unique(z) if v > 0 and not em.has[v]})
    symbols = element_table().symbols
    return {
        "arity": arity,
        "embedding": name,
        "sampled": len(rows),
        "dropped": int((~ok).sum()),
        "lacking_elements": " ".join(symbols[v] for v in lacking),
    }


def _points(rows: pd.DataFrame, arity: int, name: str, method: str, xy: np.ndarray) -> pd.DataFrame:
    cols = ["formula", "category", "anion", "elements", "oxidation"]
    df = rows[cols].copy()
    df.insert(0, "method", method)
    df.insert(0, "embedding", name)
    df.insert(0, "arity", arity)
    df["x"], df["y"] = xy[:, 0], xy[:, 1]
    return df


def element_frequency(lake: str) -> pd.DataFrame:
    """Occurrences of each element in the allowed binary compositions of ``lake``."""
    return (
        connect_lake(lake)
        .execute(
            "SELECT e.z, e.symbol, count(c.formula) AS count FROM elements e LEFT JOIN compositions c "
            "ON c.arity = 2 AND c.allowed AND (c.z1 = e.z OR c.z2 = e.z) GROUP BY ALL ORDER BY e.z"
        )
        .df()
    )


def _replace(path: Path, write: Any) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def _write(
    report: MapsReport,
    points: pd.DataFrame,
    frequency: pd.DataFrame | None,
    source: dict[int, str],
    checks: dict[str, float],
    per_category: int,
    seed: int,
) -> None:
    out = report.out
    out.mkdir(parents=True, exist_ok=True)
    _replace(out / POINTS, lambda p: points.to_parquet(p, index=False))
    _replace(out / SEPARATION, lambda p: report.separation.to_csv(p, index=False, float_format="%.4f"))
    _replace(out / DROPPED, lambda p: report.dropped.to_csv(p, index=False))
    if frequency is not None:
        _replace(out / FREQUENCY, lambda p: frequency.to_csv(p, index=False))
    manifest = {
        "code_version": __version__,
        "lakes": {str(k): v for k, v in source.items()},
        "per_category": per_category,
        "seed": seed,
        "available": {str(k): s.available for k, s in report.samples.items()},
        "taken_whole": {str(k): s.taken_whole for k, s in report.samples.items()},
        "notes": report.notes,
        "reference_check_max_rel_err": checks,
        "seconds": {k: round(v, 2) for k, v in report.seconds.items()},
    }
    _replace(out / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=1)))


POINT_COLUMNS = ("arity", "embedding", "method", "formula", "category", "anion", "elements", "oxidation",
                 "x", "y")  # fmt: skip


def read_points(maps: str | Path) -> pd.DataFrame:
    """The ``points.parquet`` of a maps folder, with a clear error when it is missing or unreadable."""
    from crystalspace.tables import read_frame

    path = Path(maps) / POINTS
    if not path.is_file():
        raise MapsError(f"no maps at {maps} (missing {POINTS}); run `crystalspace map build` first")
    points = read_frame(path, "maps points")
    missing = [c for c in POINT_COLUMNS if c not in points.columns]
    if missing:
        raise MapsError(f"{path}: not a maps points table (lacks column(s) {', '.join(missing)})")
    return points
