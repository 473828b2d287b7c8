"""DuckDB over the lake: a connection with ``compositions``, ``composition_counts`` and
``elements`` views, and the named queries of ``queries/*.sql``."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from crystalspace.chem.elements import MAX_Z, ChemistryError, element_table
from crystalspace.lake.manifest import check_format, read_manifest, read_record_table, repair_hint
from crystalspace.lake.store import MANIFEST, RECORD, SCHEMA, LakeError, io_error, parse_shard_relpath
from crystalspace.storage import is_remote, list_files, redact, resolve

_COLUMNS = (
    "arity::UTINYINT AS arity, z1::UTINYINT AS z1, z2, z3, z4, n1, n2, n3, n4, formula, "
    "allowed, known, category, ox1, ox2, ox3, ox4, ox_set"
)


def connect(lake: str, **settings: Any) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose ``compositions`` view reads the lake's recorded shard files.

    Views: ``compositions`` (one row per stored composition), ``composition_counts`` (the shard
    record: exact per-shard category counts, also for rows a lake does not store, with each
    file's size and SHA-256) and ``elements`` (``z``, ``symbol``, ``pauling``); macro
    ``species(z, q)`` formats ``Fe+3``.

    ``compositions`` reads exactly the files the shard record lists, so it always agrees with
    ``composition_counts``, also while a build is running. A file whose size differs from its
    record (truncated, replaced) refuses the connection with one line.

    The connection reads the lake and nothing else: file access outside the lake, extensions
    and configuration changes are disabled (``settings``, e.g. ``threads=4``, are applied
    first). ``lake`` is a local path or an object-store URI (``s3://…``, options in the query
    string as for :func:`crystalspace.lake.store.resolve`); local lakes are read by DuckDB's own
    Parquet reader, object-store lakes through a pyarrow dataset (DuckDB pushes projections and
    filters into the scan), so no DuckDB extension is needed.
    """
    fs, root = resolve(lake)
    record, files = _recorded(lake)
    con = duckdb.connect()
    _elements(con)
    for key, value in settings.items():
        if not key.isidentifier():
            raise ValueError(f"not a DuckDB setting name: {key!r}")
        con.execute(f"SET {key} = ?", [value])  # a checked name; the value is bound
    con.register("_shard_record", record)
    con.execute("CREATE VIEW composition_counts AS SELECT * FROM _shard_record")
    if not files:
        _empty_compositions(con)
    elif is_remote(lake):
        _register_remote(con, fs, root, files)
    else:
        con.execute("SET VARIABLE lake_files = ?", [[f"{root}/{rel}" for rel in files]])
        con.execute(
            f"CREATE VIEW compositions AS SELECT {_COLUMNS} FROM "
            "read_parquet(getvariable('lake_files'), hive_partitioning = true)"
        )
    confine(con, None if is_remote(lake) else root)
    return con


def recorded_files(lake: str) -> list[str]:
    """Paths (under the lake root) of every shard file the record lists, each checked to exist
    with its recorded size; one-line :class:`LakeError` otherwise."""
    _, root = resolve(lake)
    return [f"{root}/{rel}" for rel in _recorded(lake)[1]]


def _recorded(lake: str) -> tuple[Any, list[str]]:
    """The shard record table and its files, checked against the listing (exists, recorded size)."""
    fs, root = resolve(lake)
    name = redact(lake)
    try:
        listing = list_files(fs, root)
        manifest = read_manifest(fs, root, name)
        if manifest is None and any(parse_shard_relpath(rel) for rel in listing):
            raise LakeError(f"{name} has shard files but no {MANIFEST}; {repair_hint(name)}")
        if manifest is None:
            raise LakeError(
                f"no crystalspace lake at {name} (missing {MANIFEST}); run `crystalspace space build`"
            )
        check_format(manifest, name)
        record = read_record_table(fs, root, name)
    except OSError as exc:  # permission, unreachable object store
        raise io_error(lake, exc, "read") from None
    if record is None:
        raise LakeError(f"the shard record of {name} ({RECORD}) is missing; {repair_hint(name)}")
    files = record.column("path").to_pylist()
    sizes = record.column("bytes").to_pylist()
    for rel, size in zip(files, sizes, strict=True):
        if listing.get(rel) != size:
            state = "is missing" if rel not in listing else f"has {listing[rel]:,} bytes, recorded {size:,}"
            raise LakeError(f"{name}: shard file {rel} {state}; {repair_hint(name)}")
    return record, files


def sql_condition(where: str) -> str:
    """``where`` if it is one SQL expression (quotes closed, parentheses balanced, no ``;`` or
    comment outside quotes), for ``WHERE (…)``; one-line :class:`LakeError` otherwise."""
    depth, quote, i = 0, "", 0
    while i < len(where):
        ch = where[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == ";" or where[i : i + 2] in ("--", "/*") or depth < 0:
            break
        i += 1
    if i < len(where) or depth or quote or not where.strip():
        raise LakeError(f"the selection must be one SQL expression over the lake's columns, got {where!r}")
    return where


def confine(con: duckdb.DuckDBPyConnection, root: str | None) -> None:
    """No file access but to ``root`` (none for object-store lakes), no extensions, no changes."""
    if root is not None:
        con.execute("SET allowed_directories = ?", [[root + "/"]])
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")


def _elements(con: duckdb.DuckDBPyConnection) -> None:
    """The ``elements`` table and the ``species(z, q)`` macro (``'Fe+3'``, NULL where q is NULL)."""
    table = element_table()
    con.execute("CREATE TABLE elements (z UTINYINT, symbol VARCHAR, pauling DOUBLE)")
    con.executemany(
        "INSERT INTO elements VALUES (?, ?, ?)",
        [
            (z, table.symbols[z], None if table.pauling[z] != table.pauling[z] else float(table.pauling[z]))
            for z in range(1, MAX_Z + 1)
        ],
    )
    con.execute(
        "CREATE MACRO species(zz, qq) AS CASE WHEN qq IS NULL OR zz = 0 THEN NULL ELSE "
        "(SELECT symbol FROM elements WHERE z = zz) || CASE WHEN qq > 0 THEN '+' ELSE '' END || qq END"
    )


def _register_remote(con: duckdb.DuckDBPyConnection, fs: Any, root: str, files: list[str]) -> None:
    """``compositions`` over an object-store lake's recorded files, through pyarrow."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    keys = pa.schema([("arity", pa.uint8()), ("z1", pa.uint8())])
    dataset = ds.dataset(
        [f"{root}/{rel}" for rel in files],
        schema=pa.schema([*keys, *SCHEMA]),
        filesystem=fs,
        format="parquet",
        partitioning=ds.partitioning(keys, flavor="hive"),
        partition_base_dir=root,
    )
    con.register("_lake_shards", dataset)
    con.execute(f"CREATE VIEW compositions AS SELECT {_COLUMNS} FROM _lake_shards")


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


_QUERY_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def query_params(name: str) -> dict[str, str]:
    """Parameters a named query declares in ``-- param: name = default`` header lines."""
    params = {}
    for line in query_sql(name).splitlines():
        if line.startswith("-- param:"):
            key, _, default = line.removeprefix("-- param:").partition("=")
            params[key.strip()] = default.strip()
    return params


def query_sql(name: str) -> str:
    """The SQL of a named query: a file of the query folder, never a path."""
    if not _QUERY_NAME.match(name) or name not in query_names():
        raise LakeError(f"unknown query {name!r}; available: {', '.join(query_names())}")
    return (queries_dir() / f"{name}.sql").read_text()


def run_query(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, str] | None = None) -> Any:
    """Run a named query with its declared parameters (defaults from its header)."""
    declared = query_params(name)
    unknown = set(params or {}) - set(declared)
    if unknown:
        raise LakeError(
            f"query {name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(declared) or 'none'}"
        )
    bound = {key: _bind(name, key, value) for key, value in {**declared, **(params or {})}.items()}
    return con.execute(query_sql(name), bound or None)


def _bind(query: str, key: str, value: str) -> Any:
    """A parameter value: element symbols -> atomic numbers (constants DuckDB prunes on), integers."""
    if key in ("elements", "anion"):
        zs = [element_table().z_of(s.strip()) for s in value.split(",") if s.strip()]
        if not zs:
            raise LakeError(f"query {query!r}: -p {key}= needs element symbols, e.g. {key}=O")
        if key == "anion" and len(zs) > 1:
            raise LakeError(f"query {query!r}: -p anion takes one element, got {value!r}")
        return zs if key == "elements" else zs[0]
    if value.lstrip("-").isdigit():
        return int(value)
    return value


__all__ = ["ChemistryError", "connect", "query_names", "run_query"]
