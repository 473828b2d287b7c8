"""The lake's record of itself: its header (identity and layout), the manifest, the shard record
and the build lock.

* The **header** identifies a lake's rows: the configuration (element pool, factor limit,
  oxidation set, reference set, rows mode), its hash with the content hashes of the oxidation and
  reference sets, and, per arity, the shard layout (``shard_rows``). Every shard file carries
  it in its footer, so a lost manifest is rebuilt from the files.
* The **shard record** (``_shards.pq``) has one row per finished shard file: its exact counts,
  size and SHA-256. Queries read exactly the recorded files; a re-run and ``lake verify`` check
  the files against it.
* The **manifest** (``_manifest.json``) holds the header, the layout and per-arity totals.

Record and manifest are replaced atomically as shards finish.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import fields
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from crystalspace import __version__
from crystalspace.lake.store import (
    CATEGORIES,
    FORMAT_VERSION,
    LOCK,
    MANIFEST,
    RECORD,
    LakeError,
    ShardCounts,
    ShardFile,
)
from crystalspace.storage import now_iso, read_json, remove_quietly, write_atomic

_COUNT_FIELDS = [f.name for f in fields(ShardCounts)]
RECORD_SCHEMA = pa.schema(
    [(name, pa.float64() if name == "seconds" else pa.int64()) for name in _COUNT_FIELDS]
    + [("bytes", pa.int64()), ("sha256", pa.string()), ("path", pa.string())]
)
TOTAL_KEYS = ("tuples", "compositions", "allowed", "known", *CATEGORIES, "rows")


def repair_hint(name: str) -> str:
    return f"run `crystalspace lake repair --lake {name}`"


# -- the shard record ----------------------------------------------------------------------------


def write_record(fs: pafs.FileSystem, root: str, files: Iterable[ShardFile]) -> None:
    """Replace ``_shards.pq`` with one row per finished shard file (sorted by arity, rank)."""
    rows = sorted(files, key=lambda f: f.key)
    cols: dict[str, list[Any]] = {name: [getattr(f.counts, name) for f in rows] for name in _COUNT_FIELDS}
    cols |= {"bytes": [f.bytes for f in rows], "sha256": [f.sha256 for f in rows]}
    cols["path"] = [f.relpath for f in rows]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(cols, schema=RECORD_SCHEMA), sink, write_page_checksum=True)
    write_atomic(fs, f"{root}/{RECORD}", sink.getvalue().to_pybytes())


def read_record_table(fs: pafs.FileSystem, root: str, name: str) -> pa.Table | None:
    """The shard record as a table; None when there is none; one-line error when it is unreadable."""
    try:
        with fs.open_input_file(f"{root}/{RECORD}") as f:
            table = pq.ParquetFile(f, page_checksum_verification=True).read()
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as exc:
        raise LakeError(f"the shard record of {name} ({RECORD}) is unreadable; {repair_hint(name)}") from exc
    if not table.schema.equals(RECORD_SCHEMA):
        raise LakeError(f"the shard record of {name} ({RECORD}) has unexpected columns; {repair_hint(name)}")
    return table


def read_record(fs: pafs.FileSystem, root: str, name: str) -> dict[tuple[int, int], ShardFile] | None:
    """``(arity, shard) -> ShardFile`` of the record; None when there is none."""
    table = read_record_table(fs, root, name)
    if table is None:
        return None
    out = {}
    for row in table.to_pylist():
        f = ShardFile(ShardCounts(**{k: row[k] for k in _COUNT_FIELDS}), row["bytes"], row["sha256"])
        out[f.key] = f
    return out


# -- header and manifest -------------------------------------------------------------------------


def read_manifest(fs: pafs.FileSystem, root: str, name: str) -> dict[str, Any] | None:
    """The manifest; None when there is none; one-line error when it is not valid JSON."""
    try:
        manifest = read_json(fs, f"{root}/{MANIFEST}")
    except (ValueError, UnicodeDecodeError):
        raise LakeError(f"the manifest of {name} ({MANIFEST}) is unreadable; {repair_hint(name)}") from None
    if manifest is not None and not isinstance(manifest.get("config_hash"), str):
        raise LakeError(f"the manifest of {name} ({MANIFEST}) has no config hash; {repair_hint(name)}")
    return manifest


def new_manifest(header: dict[str, Any]) -> dict[str, Any]:
    """A manifest for a new lake with this header (no arities yet)."""
    return {**header, "created": now_iso(), "arities": {}}


def check_format(manifest: dict[str, Any], name: str) -> None:
    """Refuse a lake written in an older format with the one line that says how to upgrade it."""
    if manifest.get("format") != FORMAT_VERSION:
        raise LakeError(
            f"{name} is a format-{manifest.get('format')} lake (this version reads format {FORMAT_VERSION}); "
            f"{repair_hint(name)} to upgrade it in place"
        )


def check_identity(manifest: dict[str, Any], config_hash: str, name: str) -> None:
    """Refuse a lake that holds another configuration's rows."""
    if manifest.get("config_hash") != config_hash:
        raise LakeError(
            f"{name} holds another configuration's data (config hash {manifest.get('config_hash')}, "
            f"this run {config_hash}); use a new --lake path"
        )


def check_layout(manifest: dict[str, Any], arity: int, shard_rows: int, name: str, has_files: bool) -> None:
    """Refuse to write an arity in a shard layout other than the one its files already use."""
    recorded = manifest["arities"].get(str(arity), {}).get("shard_rows")
    if recorded is not None and recorded != shard_rows and has_files:
        raise LakeError(
            f"{name} holds arity {arity} in shards of shard_rows={recorded}, this run asks for "
            f"{shard_rows}; re-run with --set shard_rows={recorded} or use a new --lake path"
        )


def update_manifest(
    manifest: dict[str, Any],
    plans: Mapping[int, tuple[int, int, str]],
    files: Iterable[ShardFile],
) -> bool:
    """Refresh per-arity layout and totals from the finished files; True when every plan is done.

    ``plans`` maps arity -> (shard_rows, planned shard count, rows mode).
    """
    by_arity: dict[int, list[ShardFile]] = {}
    for f in files:
        by_arity.setdefault(f.counts.arity, []).append(f)
    complete = True
    for arity, (shard_rows, planned, rows_mode) in sorted(plans.items()):
        mine = [f.counts for f in by_arity.get(arity, [])]
        partitions: dict[int, dict[str, int]] = {}
        for c in mine:
            part = partitions.setdefault(c.z1, {"files": 0, "rows": 0, "compositions": 0, "allowed": 0})
            part["files"] += 1
            part["rows"] += c.rows
            part["compositions"] += c.compositions
            part["allowed"] += c.allowed
        manifest["arities"][str(arity)] = {
            "rows": rows_mode,
            "shard_rows": shard_rows,
            "shards_total": planned,
            "shards_done": len(mine),
            "complete": len(mine) == planned,
            "totals": {key: sum(getattr(c, key) for c in mine) for key in TOTAL_KEYS},
            "partitions": {str(z1): p for z1, p in sorted(partitions.items())},
        }
        complete &= len(mine) == planned
    manifest["arities"] = dict(sorted(manifest["arities"].items()))
    manifest["code_version"] = __version__
    manifest["updated"] = now_iso()
    return complete


def save(
    fs: pafs.FileSystem,
    root: str,
    manifest: dict[str, Any],
    plans: Mapping[int, tuple[int, int, str]],
    files: Mapping[tuple[int, int], ShardFile],
) -> bool:
    """Write the shard record, then the manifest (each atomically); True when every plan is done."""
    write_record(fs, root, files.values())
    complete = update_manifest(manifest, plans, files.values())
    write_atomic(fs, f"{root}/{MANIFEST}", json.dumps(manifest, indent=1).encode())
    return complete


# -- one writer at a time ------------------------------------------------------------------------

LEASE_S = 120.0  # an object-store lock not refreshed for this long belongs to a dead build
HEARTBEAT_S = 20.0


class BuildLock:
    """Held while a build or repair writes a lake, so a second writer is refused with one line.

    Local lakes use an OS lock on ``_build.lock`` (released by the kernel if the holder dies,
    even by ``kill -9``). Object stores have no such lock through pyarrow: there the lock is a
    lease object that the holder refreshes every 20 s and that another build may take over once it
    is two minutes old.
    """

    def __init__(self, fs: pafs.FileSystem, root: str, name: str, remote: bool) -> None:
        self.fs, self.path, self.name, self.remote = fs, f"{root}/{LOCK}", name, remote
        self.holder = {"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                       "since": now_iso()}  # fmt: skip
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BuildLock:
        if self.remote:
            self._take_lease()
        else:
            self._lock_file()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock; the file stays (see _lock_file)
            self._fd = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            if self._read_lease().get("id") == self.holder["id"]:
                remove_quietly(self.fs, self.path)

    def _busy(self, other: dict[str, Any]) -> LakeError:
        who = f"process {other.get('pid')} on {other.get('host')} since {other.get('since')}"
        return LakeError(f"{self.name} is being written by another build ({who}); wait for it to finish")

    def _lock_file(self) -> None:
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # The lock file is never deleted: a process waiting on the old inode would then lock a
        # file nobody else sees.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 4096)
            os.close(fd)
            raise self._busy(_json_or_empty(other)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(self.holder).encode())
        self._fd = fd

    def _read_lease(self) -> dict[str, Any]:
        """The lease object ({} when there is none or it is unreadable: nobody holds it)."""
        try:
            return read_json(self.fs, self.path) or {}
        except (ValueError, UnicodeDecodeError):
            return {}

    def _take_lease(self) -> None:
        current = self._read_lease()
        if current and time.time() - float(current.get("heartbeat", 0)) < LEASE_S:
            raise self._busy(current)
        self._write_lease()
        time.sleep(1.0)  # a build that wrote its lease at the same moment: the last writer wins
        current = self._read_lease()
        if current.get("id") != self.holder["id"]:
            raise self._busy(current)
        self._thread = threading.Thread(target=self._heartbeat, daemon=True, name="lake-lease")
        self._thread.start()

    def _write_lease(self) -> None:
        write_atomic(self.fs, self.path, json.dumps({**self.holder, "heartbeat": time.time()}).encode())

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._write_lease()
            except OSError:  # a flaky store: the next beat tries again
                continue


def _json_or_empty(data: bytes) -> dict[str, Any]:
    try:
        return dict(json.loads(data))
    except (ValueError, TypeError):
        return {}
