"""Storage for the lake: URIs (local paths or object stores), atomic writes, shard files.

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

import contextlib
import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from crystalspace.errors import UserError

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


class LakeError(UserError, RuntimeError):
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


# -- URIs and messages -------------------------------------------------------------------------


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Filesystem and path for a local path or URI (``s3://bucket/lake``, ``gs://…``, ``file://…``).

    Object-store options can ride in the URI, as pyarrow reads them, e.g.
    ``s3://KEY:SECRET@bucket/lake?endpoint_override=127.0.0.1:9000&scheme=http``; without them
    credentials come from the usual environment variables, config files or instance roles.
    """
    try:
        fs, path = pafs.FileSystem.from_uri(uri if "://" in uri else os.path.abspath(uri))
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


_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s'\"]*@", re.I)
_SECRET_OPTIONS = re.compile(
    r"([?&](?:access_key|secret_key|session_token|[a-z_]*secret[a-z_]*)=)[^&\s'\"]*", re.I
)


def scrub(text: str) -> str:
    """``text`` with any ``scheme://user:secret@`` credentials and secret URI options removed."""
    return _SECRET_OPTIONS.sub(r"\1***", _CREDENTIALS.sub(r"\1", text))


def io_error(uri: str, exc: BaseException, action: str = "write") -> LakeError:
    """One-line :class:`LakeError` for an I/O failure (permission, disk full, unreachable store)."""
    return LakeError(f"cannot {action} the lake at {redact(uri)}: {scrub(_first_line(exc))}")


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


# -- files ---------------------------------------------------------------------------------------


def write_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name, then rename: readers see old or new."""
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
    except BaseException:
        remove_quietly(fs, tmp)  # a failed write or rename leaves nothing behind
        raise


def remove_quietly(fs: pafs.FileSystem, path: str) -> None:
    with contextlib.suppress(OSError):
        fs.delete_file(path)


def read_json(fs: pafs.FileSystem, path: str) -> dict[str, Any] | None:
    """The JSON object at ``path``; None when there is no file."""
    try:
        with fs.open_input_stream(path) as f:
            return dict(json.loads(f.read()))
    except FileNotFoundError:
        return None


def list_files(fs: pafs.FileSystem, root: str) -> dict[str, int]:
    """Every file under ``root``: path relative to it -> size in bytes."""
    selector = pafs.FileSelector(root, allow_not_found=True, recursive=True)
    return {
        info.path[len(root) + 1 :]: int(info.size or 0)
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.File
    }


def file_sha256(fs: pafs.FileSystem, path: str) -> str:
    """SHA-256 of a file (read in 8 MB blocks; hashing releases the GIL, so threads help)."""
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


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


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
