"""The lake's files: names, the shard schema, and shard files with their counts and header.

Layout under the lake root (a local path or any URI pyarrow.fs understands, e.g. ``s3://``)::

    _manifest.json                       config, config hash, layout, per-arity totals
    _shards.pq                           the shard record: counts, size and SHA-256 per file
    _build.lock                          held by the one build that may write the lake
    arity=3/z1=8/part-000000001234.parquet

A shard is a rank range of element tuples that share their first element, so it lands in
exactly one partition and one file. Only data files end in ``.parquet``, so a glob such as
``LAKE/**/*.parquet`` reads composition rows and nothing else. A shard file is serialised in
memory, hashed, written under a temporary name and renamed; its footer carries its counts and
the lake's header (configuration and layout), so the lake can be rebuilt from its files.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from crystalspace.storage import StorageError, first_line, redact, scrub, write_atomic

MANIFEST = "_manifest.json"
RECORD = "_shards.pq"
LOCK = "_build.lock"
LEGACY_COUNTS = "_counts.parquet"  # format 1 kept its counts here, inside the data glob
FORMAT_VERSION = 2
ROW_GROUP_ROWS = 1 << 20
_FOOTER_KEY = b"crystalspace.shard"
_SHARD_NAME = re.compile(r"^arity=(\d+)/z1=(\d+)/part-(\d{12})\.parquet$")

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


class LakeError(StorageError):
    """A lake that cannot be used as asked (another config's data, missing, corrupt)."""


@dataclass(frozen=True)
class Shard:
    """A rank range of element tuples that share their first element (one lake file)."""

    arity: int
    z1: int
    start: int
    stop: int

    @property
    def relpath(self) -> str:
        return shard_relpath(self.arity, self.z1, self.start)


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


@dataclass(frozen=True)
class ShardFile:
    """A finished shard file: its counts, size in bytes and SHA-256 (the shard record's row)."""

    counts: ShardCounts
    bytes: int
    sha256: str

    @property
    def key(self) -> tuple[int, int]:
        return self.counts.arity, self.counts.shard

    @property
    def relpath(self) -> str:
        return shard_relpath(self.counts.arity, self.counts.z1, self.counts.shard)


def shard_relpath(arity: int, z1: int, shard: int) -> str:
    """``arity=K/z1=Z/part-<12-digit rank>.parquet``: a shard's path under the lake root."""
    return f"arity={arity}/z1={z1}/part-{shard:012d}.parquet"


def parse_shard_relpath(rel: str) -> tuple[int, int, int] | None:
    """``(arity, z1, shard)`` of a shard file's path under the root, or None for any other file."""
    m = _SHARD_NAME.match(rel)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def io_error(uri: str, exc: BaseException, action: str = "write") -> LakeError:
    """One-line :class:`LakeError` for an I/O failure (permission, disk full, unreachable store)."""
    return LakeError(f"cannot {action} the lake at {redact(uri)}: {scrub(first_line(exc))}")


def serialise_shard(table: pa.Table, counts: ShardCounts, header: dict[str, Any]) -> bytes:
    """A shard's Parquet bytes: zstd, statistics, page checksums; counts and lake header in the footer."""
    # No timing in the footer: a shard's bytes depend on its rows alone, so a shard that Ray runs
    # again (a task retried after a node died) rewrites exactly the file it recorded.
    footer = {k: v for k, v in asdict(counts).items() if k != "seconds"}
    meta = {_FOOTER_KEY: json.dumps({"counts": footer, "lake": header}).encode()}
    sink = pa.BufferOutputStream()
    pq.write_table(
        table.replace_schema_metadata(meta),
        sink,
        compression="zstd",
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
        write_page_checksum=True,
    )
    return bytes(sink.getvalue().to_pybytes())


def write_shard(
    fs: pafs.FileSystem, root: str, table: pa.Table, counts: ShardCounts, header: dict[str, Any]
) -> ShardFile:
    """Write one shard file atomically and return its record (counts, size, SHA-256)."""
    data = serialise_shard(table, counts, header)
    write_atomic(fs, f"{root}/{shard_relpath(counts.arity, counts.z1, counts.shard)}", data)
    return ShardFile(counts, len(data), hashlib.sha256(data).hexdigest())


def read_footer(fs: pafs.FileSystem, path: str) -> tuple[ShardCounts, dict[str, Any] | None]:
    """Counts and lake header stored in a shard file's footer (header None: a format-1 file)."""
    with fs.open_input_file(path) as f:
        meta = pq.read_schema(f).metadata or {}
    if _FOOTER_KEY not in meta:
        raise LakeError(f"{path}: not a crystalspace shard (no counts in its footer)")
    payload = json.loads(meta[_FOOTER_KEY])
    if "counts" not in payload:  # format 1: the counts alone
        return ShardCounts(**payload), None
    return ShardCounts(**{"seconds": 0.0, **payload["counts"]}), payload["lake"]


def read_all_pages(fs: pafs.FileSystem, path: str) -> int:
    """Decode every page of a Parquet file (checking page checksums where written); its row count."""
    with fs.open_input_file(path) as f:
        return int(pq.ParquetFile(f, page_checksum_verification=True).read().num_rows)
