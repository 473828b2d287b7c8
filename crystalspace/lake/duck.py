"""DuckDB over the lake: a connection with ``compositions``, ``composition_counts`` and
``elements`` views, and the named queries of ``queries/*.sql``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from crystalspace.chem.elements import MAX_Z, ChemistryError, element_table
from crystalspace.lake.store import (
    COUNTS,
    MANIFEST,
    SCHEMA,
    LakeError,
    io_error,
    is_remote,
    read_manifest,
    resolve,
    shard_files,
)

_COLUMNS = (
    "arity::UTINYINT AS arity, z1::UTINYINT AS z1, z2, z3, z4, n1, n2, n3, n4, formula, "
    "allowed, known, category, ox1, ox2, ox3, ox4, ox_set"
)


def connect(lake: str, *, check: bool = True) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose ``compositions`` view reads the lake's Parquet shards.

    Views: ``compositions`` (one row per stored composition), ``composition_counts`` (exact
    per-shard category counts, also for rows a lake does not store) and ``elements``
    (``z``, ``symbol``, ``pauling``); macro ``species(z, q)`` formats ``Fe+3``.

    ``lake`` is a local path or an object-store URI (``s3://…``, ``gs://…``, options in the query
    string as for :func:`crystalspace.lake.store.resolve`). Local lakes are read by DuckDB's own
    Parquet reader; object-store lakes through a pyarrow dataset over ``pyarrow.fs`` (DuckDB
    pushes projections and filters into the scan), so no DuckDB extension is needed.
    """
    fs, root = resolve(lake)
    try:
        manifest = read_manifest(fs, root) if check else {}
    except OSError as exc:  # permission, unreachable object store
        raise io_error(lake, exc, "read") from None
    if manifest is None:
        raise LakeError(
            f"no crystalspace lake at {lake} (missing {MANIFEST}); run `crystalspace space build`"
        )
    con = duckdb.connect()
    table = element_table()
    con.execute("CREATE TABLE elements (z UTINYINT, symbol VARCHAR, pauling DOUBLE)")
    con.executemany(
        "INSERT INTO elements VALUES (?, ?, ?)",
        [
            (z, table.symbols[z], None if table.pauling[z] != table.pauling[z] else float(table.pauling[z]))
            for z in range(1, MAX_Z + 1)
        ],
    )
    # species(z, q) -> 'Fe+3' (NULL where q is NULL): labels the recorded oxidation states
    con.execute(
        "CREATE MACRO species(zz, qq) AS CASE WHEN qq IS NULL OR zz = 0 THEN NULL ELSE "
        "(SELECT symbol FROM elements WHERE z = zz) || CASE WHEN qq > 0 THEN '+' ELSE '' END || qq END"
    )
    if is_remote(lake):
        _register_remote(con, fs, root)
        return con
    shards = f"{root}/arity=*/z1=*/*.parquet"
    if list(Path(root).glob("arity=*/z1=*/*.parquet")):
        con.execute(
            f"CREATE VIEW compositions AS SELECT {_COLUMNS} FROM "
            f"read_parquet('{shards}', hive_partitioning=true)"
        )
    else:
        _empty_compositions(con)
    if Path(f"{root}/{COUNTS}").exists():
        con.execute(f"CREATE VIEW composition_counts AS SELECT * FROM read_parquet('{root}/{COUNTS}')")
    return con


def _register_remote(con: duckdb.DuckDBPyConnection, fs: Any, root: str) -> None:
    """``compositions`` / ``composition_counts`` over an object-store lake, through pyarrow."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    files = shard_files(fs, root)
    if files:
        keys = pa.schema([("arity", pa.uint8()), ("z1", pa.uint8())])
        dataset = ds.dataset(
            files,
            schema=pa.schema([*keys, *SCHEMA]),
            filesystem=fs,
            format="parquet",
            partitioning=ds.partitioning(keys, flavor="hive"),
            partition_base_dir=root,
        )
        con.register("_lake_shards", dataset)
        con.execute(f"CREATE VIEW compositions AS SELECT {_COLUMNS} FROM _lake_shards")
    else:
        _empty_compositions(con)
    try:
        with fs.open_input_file(f"{root}/{COUNTS}") as f:
            con.register("_lake_counts", pq.read_table(f))
    except FileNotFoundError:
        return
    con.execute("CREATE VIEW composition_counts AS SELECT * FROM _lake_counts")


def _empty_compositions(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE VIEW compositions AS SELECT * FROM (SELECT 0::UTINYINT arity, 0::UTINYINT z1, "
        "0::UTINYINT z2, 0::UTINYINT z3, 0::UTINYINT z4, 0::UTINYINT n1, 0::UTINYINT n2, "
        "0::UTINYINT n3, 0::UTINYINT n4, ''::VARCHAR formula, false allowed, false known, "
        "''::VARCHAR category, 0::TINYINT ox1, 0::TINYINT ox2, 0::TINYINT ox3, 0::TINYINT ox4, "
        "''::VARCHAR ox_set) WHERE false"
    )


def queries_dir() -> Path:
    """Where the named queries live: inside the wheel, or ``queries/`` of a source checkout."""
    packaged = Path(str(resources.files("crystalspace") / "queries"))
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "queries"


def query_names() -> list[str]:
    return sorted(p.stem for p in queries_dir().glob("*.sql"))


def query_params(name: str) -> dict[str, str]:
    """Parameters a named query declares in ``-- param: name = default`` header lines."""
    params = {}
    for line in query_sql(name).splitlines():
        if line.startswith("-- param:"):
            key, _, default = line.removeprefix("-- param:").partition("=")
            params[key.strip()] = default.strip()
    return params


def query_sql(name: str) -> str:
    path = queries_dir() / f"{name}.sql"
    if not path.is_file():
        raise LakeError(f"unknown query {name!r}; available: {', '.join(query_names())}")
    return path.read_text()


def run_query(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, str] | None = None) -> Any:
    """Run a named query with its declared parameters (defaults from its header)."""
    values = {**query_params(name), **(params or {})}
    unknown = set(values) - set(query_params(name))
    if unknown:
        raise LakeError(f"query {name!r} has no parameter(s) {', '.join(sorted(unknown))}")
    bound: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("elements", "anion"):  # symbols -> atomic numbers, constants DuckDB can prune on
            zs = [element_table().z_of(s.strip()) for s in value.split(",") if s.strip()]
            bound[key] = zs if key == "elements" else zs[0]
        elif value.lstrip("-").isdigit():
            bound[key] = int(value)
        else:
            bound[key] = value
    return con.execute(query_sql(name), bound or None)


__all__ = ["ChemistryError", "connect", "query_names", "run_query"]
