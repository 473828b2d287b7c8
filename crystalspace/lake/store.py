"""The composition lake: hive-partitioned Parquet shards, per-shard counts and a manifest.

Layout under the lake root (a local path or any URI pyarrow.fs understands, e.g. ``s3://``)::

    _manifest.json                       config, config hash, code version, per-arity totals
    _counts.parquet                      one row of category counts per finished shard
    arity=3/z1=8/part-000000001234.parquet

A shard is a rank range of element tuples that share their first element, so it lands in
exactly one partition and one file. The file is written under a temporary name and renamed:
a file that exists is a finished shard (its counts ride in the Parquet footer), and a re-run
skips it. Names are deterministic, so a shard written twice replaces itself: no duplicates.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from crystalspace.errors import UserError

MANIFEST = "_manifest.json"
COUNTS = "_counts.parquet"
FORMAT_VERSION = 1
ROW_GROUP_ROWS = 1 << 20
_FOOTER_KEY = b"crystalspace.shard"

SCHEMA = pa.schema(
    [
        ("z2", pa.uint8()),
        ("z3", pa.uint8()),
        ("z4", pa.uint8()),
        ("n1", pa.uint8()),
        ("n2", pa.uint8()),
        ("n3", pa.uint8()),
        ("n4", pa.uint8()),
        ("formula", pa.string()),
        ("allowed", pa.bool_()),
        ("known", pa.bool_()),
        ("category", pa.string()),
        ("ox1", pa.int8()),
        ("ox2", pa.int8()),
        ("ox3", pa.int8()),
        ("ox4", pa.int8()),
        ("ox_set", pa.string()),
    ]
)
"""Columns stored in shard files; ``arity`` and ``z1`` come from the hive partition path."""

CATEGORIES = ("standard", "missing", "interesting", "unlikely")


class LakeError(UserError, RuntimeError):
    """A lake that cannot be used as asked (another config's data, missing, corrupt)."""


@dataclass(frozen=True)
class ShardCounts:
    """Exact category counts of one shard (over all its compositions, written or not)."""

    arity: int
    z1: int
    shard: int  # rank of the first element tuple
    tuples: int
    compositions: int
    allowed: int
    known: int
    standard: int
    missing: int
    interesting: int
    unlikely: int
    rows: int  # rows written to the file
    seconds: float


def shard_path(root: str, arity: int, z1: int, shard: int) -> str:
    return f"{root}/arity={arity}/z1={z1}/part-{shard:012d}.parquet"


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Filesystem and path for a local path or URI (``s3://bucket/lake``, ``gs://…``, ``file://…``).

    Object-store options can ride in the URI, as pyarrow reads them, e.g.
    ``s3://KEY:SECRET@bucket/lake?endpoint_override=127.0.0.1:9000&scheme=http``; without them
    credentials come from the usual environment variables, config files or instance roles.
    """
    try:
        fs, path = pafs.FileSystem.from_uri(uri if "://" in uri else _abspath(uri))
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise LakeError(f"cannot open {redact(uri)}: {_first_line(exc)}") from None
    return fs, path.rstrip("/")


def is_remote(uri: str) -> bool:
    """True for an object-store URI (``s3://``, ``gs://``, …), False for a local path or ``file://``."""
    return "://" in uri and not uri.startswith("file://")


def join_uri(uri: str, *parts: str) -> str:
    """``uri/part/…`` with any query string (object-store options) kept at the end."""
    base, sep, query = uri.partition("?")
    return "/".join([base.rstrip("/"), *parts]) + sep + query


def redact(uri: str) -> str:
    """``uri`` without credentials (``key:secret@``) or query string, for messages."""
    scheme, sep, rest = uri.split("?", 1)[0].partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}" if sep else scheme


def io_error(uri: str, exc: BaseException, action: str = "write") -> LakeError:
    """One-line :class:`LakeError` for an I/O failure (permission, disk full, unreachable store)."""
    return LakeError(f"cannot {action} the lake at {redact(uri)}: {_first_line(exc)}")


def find_os_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind ``exc``: itself, one of its causes, or, for an error a Ray worker
    raised (which reaches the driver as text), the last ``[Errno N] …`` line of its message."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return current
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    found = re.findall(r"^\s*\w*(?:Error|Exception): \[Errno (\d+)\] ?(.*)$", str(exc), flags=re.M)
    if found:
        errno, message = found[-1]
        return OSError(int(errno), message.strip())
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.errno and exc.strerror:
        text = f"[Errno {exc.errno}] {exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return text.splitlines()[0] if text else type(exc).__name__


def _abspath(path: str) -> str:
    import os

    return os.path.abspath(path)


def write_shard(fs: pafs.FileSystem, root: str, table: pa.Table, counts: ShardCounts) -> None:
    """Write one shard file atomically (temporary name, then rename); counts go in the footer."""
    final = shard_path(root, counts.arity, counts.z1, counts.shard)
    tmp = final + ".tmp"
    fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
    meta = {_FOOTER_KEY: json.dumps(asdict(counts)).encode()}
    table = table.replace_schema_metadata(meta)
    try:
        with fs.open_output_stream(tmp) as sink:
            pq.write_table(
                table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=True
            )
    except BaseException:
        _remove_quietly(fs, tmp)  # a half-written file never stays behind (disk full, killed)
        raise
    fs.move(tmp, final)


def _remove_quietly(fs: pafs.FileSystem, path: str) -> None:
    with contextlib.suppress(OSError):
        fs.delete_file(path)


def shard_files(fs: pafs.FileSystem, root: str) -> list[str]:
    """Paths of every finished shard file (``arity=*/z1=*/part-*.parquet``) of the lake."""
    selector = pafs.FileSelector(root, allow_not_found=True, recursive=True)
    return sorted(
        info.path
        for info in fs.get_file_info(selector)
        if info.is_file and info.base_name.startswith("part-") and info.base_name.endswith(".parquet")
    )


def finished_shards(fs: pafs.FileSystem, root: str, arity: int) -> dict[int, str]:
    """Shard id -> file path for every finished shard file of ``arity``."""
    selector = pafs.FileSelector(f"{root}/arity={arity}", allow_not_found=True, recursive=True)
    done = {}
    for info in fs.get_file_info(selector):
        name = info.base_name
        if info.is_file and name.startswith("part-") and name.endswith(".parquet"):
            done[int(name[5:-8])] = info.path
    return done


def read_footer_counts(fs: pafs.FileSystem, path: str) -> ShardCounts:
    """Counts stored in a shard file's footer."""
    with fs.open_input_file(path) as f:
        meta = pq.read_schema(f).metadata or {}
    if _FOOTER_KEY not in meta:
        raise LakeError(f"{path}: not a crystalspace shard (no counts in footer)")
    return ShardCounts(**json.loads(meta[_FOOTER_KEY]))


def read_json(fs: pafs.FileSystem, path: str) -> dict[str, Any] | None:
    try:
        with fs.open_input_stream(path) as f:
            return dict(json.loads(f.read()))
    except FileNotFoundError:
        return None


def write_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    try:
        with fs.open_output_stream(path + ".tmp") as f:
            f.write(data)
    except BaseException:
        _remove_quietly(fs, path + ".tmp")
        raise
    fs.move(path + ".tmp", path)


def read_manifest(fs: pafs.FileSystem, root: str) -> dict[str, Any] | None:
    return read_json(fs, f"{root}/{MANIFEST}")


def write_counts(fs: pafs.FileSystem, root: str, counts: list[ShardCounts]) -> None:
    """Replace ``_counts.parquet`` with one row per finished shard."""
    cols = {f.name: [getattr(c, f.name) for c in counts] for f in fields(ShardCounts)}
    table = (
        pa.table(cols)
        if counts
        else pa.table({f.name: pa.array([], pa.int64()) for f in fields(ShardCounts)})
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(fs, f"{root}/{COUNTS}", sink.getvalue().to_pybytes())


def read_counts(fs: pafs.FileSystem, root: str) -> list[ShardCounts]:
    try:
        with fs.open_input_file(f"{root}/{COUNTS}") as f:
            rows = pq.read_table(f).to_pylist()
    except FileNotFoundError:
        return []
    return [ShardCounts(**r) for r in rows]


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
