"""`map embed`: compositional embeddings (and a 2-D projection) of a whole lake selection.

``ray.data.from_items(shard files) -> map_batches(embed_shards) -> iter_rows()``: DuckDB first
finds which shard files hold rows of the ``--where`` selection (and how many, for the progress
bar). The projection (PCA, or UMAP on 50 principal components) is fitted once on a seeded
sample of the selection. Every Ray task then reads its shard through DuckDB with the same
filter, embeds it in chunks of ``CHUNK_ROWS`` (one matrix product each), projects it and writes
its Parquet files straight to the output folder; the driver only gathers row counts. The
output is written to a temporary folder and renamed at the end, so a failed run leaves nothing
half-written.

Output columns: ``formula``, ``category``, ``arity``, ``x``, ``y`` (projection; absent with
``project="none"``) and ``embedding`` (fixed-size list of float32; absent with
``vectors=False``). ``_embed.json`` records the selection, counts and timings.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crystalspace.lake.duck import confine, recorded_files, sql_condition
from crystalspace.maps.embeddings import MapsError, check_embedding, composition_embedding, load_embedding
from crystalspace.maps.reduce import PRE_PCA, standardise
from crystalspace.runtime import init_ray, progress, quiet_ray_data
from crystalspace.storage import atomic_path, is_remote, redact, resolve

log = logging.getLogger(__name__)

PROJECTIONS = ("pca", "umap", "none")
CHUNK_ROWS = 250_000
EMBED_MANIFEST = "_embed.json"
_SELECT = "arity::UTINYINT AS arity, z1, z2, z3, z4, n1, n2, n3, n4, formula, category"


@dataclass
class EmbedReport:
    """What `embed_selection` wrote."""

    out: str
    embedding: str
    projection: str
    where: str
    rows: int
    dropped: int
    files: int
    seconds: float
    fit_seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / max(self.seconds, 1e-9)


class Projector:
    """A fitted 2-D projection: standardise, PCA, and for UMAP the fitted model on top."""

    def __init__(self, method: str, x: np.ndarray, seed: int = 0) -> None:
        from sklearn.decomposition import PCA

        self.method = method
        x = np.asarray(x, dtype=np.float64)
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.scale = np.where(std > 0, std, 1.0)
        dims = 2 if method == "pca" else min(PRE_PCA, x.shape[1], len(x))
        self.pca = PCA(dims, random_state=seed).fit(standardise(x))
        self.umap: Any = None
        if method == "umap":
            import umap

            self.umap = umap.UMAP(n_components=2, random_state=seed).fit(self.pca.transform(standardise(x)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(rows, 2) float32 coordinates of embeddings ``x``."""
        pcs = self.pca.transform((np.asarray(x, dtype=np.float64) - self.mean) / self.scale)
        out = pcs if self.umap is None else self.umap.transform(pcs)
        return np.asarray(out, dtype=np.float32)


def _duck(root: str, threads: int | None = None) -> Any:
    """A DuckDB connection that may read files under ``root`` only (see `lake.duck.confine`)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute("SET threads = ?", [threads])
    confine(con, root)
    return con


_SOURCE = "read_parquet($files, hive_partitioning = true, filename = true)"


def select_files(lake: str, where: str) -> dict[str, int]:
    """Shard files of ``lake`` holding rows of the selection, with their row counts."""
    if is_remote(lake):
        raise MapsError(f"`map embed` reads local lakes; copy {redact(lake)} to a local path first")
    files = recorded_files(lake)
    if not files:
        raise MapsError(f"the lake {lake} holds no composition rows")
    import duckdb

    _, root = resolve(lake)
    try:
        rows = (
            _duck(root)
            .execute(
                f"SELECT filename, count(*) FROM {_SOURCE} WHERE ({sql_condition(where)}) "
                "GROUP BY filename ORDER BY filename",
                {"files": files},
            )
            .fetchall()
        )
    except duckdb.Error as exc:
        raise MapsError(f"invalid selection {where!r}: {str(exc).splitlines()[0]}") from None
    if not rows:
        raise MapsError(f"the selection {where!r} matches no compositions in {lake}")
    return dict(rows)


def _embed_table(table: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    z = np.stack([table[f"z{i}"] for i in range(1, 5)], axis=1)
    n = np.stack([table[f"n{i}"] for i in range(1, 5)], axis=1)
    return composition_embedding(z, n, load_embedding(name))


def embed_shards(batch: dict[str, np.ndarray], **settings: Any) -> dict[str, np.ndarray]:
    """Ray Data batch function: embed, project and write the selected rows of the batch's shard files."""
    return ShardEmbedder(**settings)(batch)


class ShardEmbedder:
    """Embeds, projects and writes the selected rows of shard files (one DuckDB connection)."""

    def __init__(
        self, lake_root: str, embedding: str, where: str, out: str, projector: Projector | None, vectors: bool
    ) -> None:
        self.name, self.where, self.out = embedding, where, Path(out)
        self.projector, self.vectors = projector, vectors
        self.con = _duck(str(Path(lake_root)), threads=1)
        load_embedding(embedding)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows, dropped = [], []
        for path in batch["path"]:
            r, d = self._one(str(path))
            rows.append(r)
            dropped.append(d)
        return {"rows": np.array(rows, dtype=np.int64), "dropped": np.array(dropped, dtype=np.int64)}

    def _one(self, path: str) -> tuple[int, int]:
        reader = self.con.execute(
            f"SELECT {_SELECT} FROM {_SOURCE} WHERE ({sql_condition(self.where)})", {"files": [path]}
        ).to_arrow_reader(CHUNK_ROWS)
        stem, total, dropped, part = Path(path).parent.name + "-" + Path(path).stem, 0, 0, 0
        pending: list[pa.RecordBatch] = []
        for batch in reader:
            pending.append(batch)
            if sum(len(b) for b in pending) >= CHUNK_ROWS:
                t, d = self._write(pa.Table.from_batches(pending), f"{stem}-{part:03d}")
                total, dropped, part, pending = total + t, dropped + d, part + 1, []
        if pending:
            t, d = self._write(pa.Table.from_batches(pending), f"{stem}-{part:03d}")
            total, dropped = total + t, dropped + d
        return total, dropped

    def _write(self, table: pa.Table, name: str) -> tuple[int, int]:
        cols = {c: table.column(c).to_numpy() for c in ("z1", "z2", "z3", "z4", "n1", "n2", "n3", "n4")}
        vec, ok = _embed_table(cols, self.name)
        if not ok.any():
            return 0, len(ok)
        keep = table.select(["formula", "category", "arity"]).filter(pa.array(ok))
        if self.projector is not None:
            xy = self.projector(vec)
            keep = keep.append_column("x", pa.array(xy[:, 0])).append_column("y", pa.array(xy[:, 1]))
        if self.vectors:
            flat = pa.array(vec.reshape(-1), type=pa.float32())
            keep = keep.append_column("embedding", pa.FixedSizeListArray.from_arrays(flat, vec.shape[1]))
        pq.write_table(keep, self.out / f"part-{name}.parquet")
        return len(keep), int((~ok).sum())


def fit_projection(
    lake: str, where: str, embedding: str, method: str, rows: int, seed: int
) -> Projector | None:
    """Fit the projection on a seeded sample of ``rows`` compositions of the selection."""
    if method == "none":
        return None
    _, root = resolve(lake)
    table = (
        _duck(root)
        .execute(
            f"SELECT {_SELECT} FROM {_SOURCE} WHERE ({sql_condition(where)}) "
            "ORDER BY hash(formula, $seed::BIGINT), formula LIMIT $rows",
            {"files": recorded_files(lake), "seed": seed, "rows": rows},
        )
        .fetchnumpy()
    )
    vec, _ = _embed_table(table, embedding)
    if len(vec) < 5:
        raise MapsError(f"only {len(vec)} compositions of the selection can be embedded with {embedding}")
    return Projector(method, vec, seed)


def embed_selection(
    lake: str,
    where: str,
    embedding: str,
    out: str | Path,
    *,
    project: str = "pca",
    vectors: bool = True,
    fit_rows: int = 20_000,
    seed: int = 0,
    address: str | None = None,
    num_cpus: int | None = None,
) -> EmbedReport:
    """Embed (and project) every composition of ``lake`` matching the SQL ``where`` into ``out``."""
    t0 = time.perf_counter()
    check_embedding(embedding)
    if project not in PROJECTIONS:
        raise MapsError(f"unknown projection {project!r}; choose from {', '.join(PROJECTIONS)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / EMBED_MANIFEST).is_file():
        raise MapsError(f"{out} exists and is not a `map embed` output; choose an empty path")
    files = select_files(lake, where)
    projector = fit_projection(lake, where, embedding, project, fit_rows, seed)
    fit_seconds = time.perf_counter() - t0
    with atomic_path(out) as tmp:
        tmp.mkdir()
        rows, dropped = _run(lake, files, embedding, where, tmp, projector, vectors, address, num_cpus)
        report = EmbedReport(
            str(out),
            embedding,
            project,
            where,
            rows,
            dropped,
            len(list(tmp.glob("*.parquet"))),
            time.perf_counter() - t0,
            fit_seconds,
        )
        (tmp / EMBED_MANIFEST).write_text(json.dumps({**asdict(report), "lake": lake}, indent=1))
    return report


def _run(
    lake: str,
    files: dict[str, int],
    embedding: str,
    where: str,
    out: Path,
    projector: Projector | None,
    vectors: bool,
    address: str | None,
    num_cpus: int | None,
) -> tuple[int, int]:
    init_ray(address, num_cpus)
    quiet_ray_data()
    import ray

    order = sorted(files, key=files.__getitem__, reverse=True)  # biggest shards first
    embed = functools.partial(
        embed_shards,
        lake_root=resolve(lake)[1],
        embedding=embedding,
        where=where,
        out=str(out.resolve()),
        projector=projector,
        vectors=vectors,
    )
    # Tasks, not an actor pool: Ray Data passes actor constructor arguments through the object
    # store, which Ray reports as an error line (ray-project/ray#53727).
    items = ray.data.from_items([{"path": p} for p in order], override_num_blocks=len(order))
    ds = items.map_batches(embed, batch_size=1, num_cpus=1)
    rows = dropped = 0
    with progress(len(order), f"embedding {embedding}", unit="rows") as bar:
        for row in ds.iter_rows():
            rows += int(row["rows"])
            dropped += int(row["dropped"])
            bar.advance(int(row["rows"]) + int(row["dropped"]))
    return rows, dropped
