"""Check a lake's files against its shard record and layout: what is sound, what must be rebuilt.

:func:`reconcile` compares the files under the root with the record and the shard plan:

* a recorded file must exist with its recorded size (and, in a full check, its SHA-256);
* a file the record does not know (a build killed between writing it and recording it) is
  read back in full, its page checksums and footer (configuration, layout, counts) checked, and
  adopted only if all agree;
* a Parquet file outside the plan (another layout or configuration), a temporary file left by
  a killed writer and a format-1 counts file do not belong in the lake.

:func:`remove_files` then deletes the damaged and stray files (their shards need a rebuild).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from crystalspace.lake.store import (
    LEGACY_COUNTS,
    LOCK,
    MANIFEST,
    RECORD,
    Shard,
    ShardFile,
    read_all_pages,
    read_footer,
)
from crystalspace.storage import file_sha256, list_files, remove_quietly

#: What a finding means for the shard it names: rebuild it, or only remove a stray file.
REBUILD = ("missing", "truncated", "altered", "unreadable", "outdated")
STRAY = ("foreign", "temporary", "legacy")


@dataclass(frozen=True)
class Finding:
    """One file that is not as the record says: ``kind`` (see REBUILD, STRAY, or ``adopted``)."""

    kind: str
    path: str
    detail: str


@dataclass
class Reconciled:
    """The sound files (the record to keep), what was found, and the planned shards still to build."""

    files: dict[tuple[int, int], ShardFile]
    findings: list[Finding] = field(default_factory=list)
    todo: list[Shard] = field(default_factory=list)

    def of_kind(self, *kinds: str) -> list[Finding]:
        return [f for f in self.findings if f.kind in kinds]


@dataclass(frozen=True)
class Expected:
    """What the files of one lake must agree with."""

    config_hash: str
    plans: dict[int, list[Shard]]
    shard_rows: dict[int, int]


def reconcile(
    fs: pafs.FileSystem,
    root: str,
    expected: Expected,
    record: dict[tuple[int, int], ShardFile],
    *,
    full: bool,
    legacy: bool = False,
) -> Reconciled:
    """Sort the lake's files into sound, damaged and stray (see the module docstring).

    ``legacy``: the lake is format 1, whose files carry no header; each is ``outdated``.
    """
    listing = _listing(fs, root)
    planned = {s.relpath: s for plan in expected.plans.values() for s in plan}
    out = Reconciled(files={})
    unrecorded: list[Shard] = []
    recorded: list[tuple[Shard, ShardFile]] = []
    for rel, size in sorted(listing.items()):
        shard = planned.get(rel)
        if rel.endswith(".tmp"):
            out.findings.append(Finding("temporary", rel, "left by a killed writer"))
        elif rel == LEGACY_COUNTS:
            out.findings.append(Finding("legacy", rel, "format-1 counts file, replaced by " + RECORD))
        elif not rel.endswith(".parquet"):
            continue  # the manifest, record, lock, or a file of the user's: not data
        elif shard is None:
            out.findings.append(Finding("foreign", rel, "a Parquet file outside this lake's layout"))
        elif legacy:
            out.findings.append(Finding("outdated", rel, "format-1 shard without a lake header"))
        elif (rec := record.get((shard.arity, shard.start))) is None:
            unrecorded.append(shard)
        elif size != rec.bytes:
            out.findings.append(Finding("truncated", rel, f"{size:,} bytes, recorded {rec.bytes:,}"))
        else:
            recorded.append((shard, rec))
    for rec in record.values():
        if rec.relpath not in listing and rec.relpath in planned:
            out.findings.append(Finding("missing", rec.relpath, "recorded, but the file is gone"))
    for shard, rec in recorded:
        out.files[(shard.arity, shard.start)] = rec
    if full:
        sums = _parallel(lambda item: file_sha256(fs, f"{root}/{item[0].relpath}"), recorded)
        for (shard, rec), digest in zip(recorded, sums, strict=True):
            if digest != rec.sha256:
                del out.files[(shard.arity, shard.start)]
                out.findings.append(Finding("altered", shard.relpath, "SHA-256 differs from the record"))
    for shard, result in zip(unrecorded, _parallel(lambda s: _inspect(fs, root, s, expected), unrecorded),
                             strict=True):  # fmt: skip
        if isinstance(result, ShardFile):
            out.files[(shard.arity, shard.start)] = result
            out.findings.append(Finding("adopted", shard.relpath, "unrecorded, read back in full and sound"))
        else:
            out.findings.append(Finding(result[0], shard.relpath, result[1]))
    out.todo = [s for plan in expected.plans.values() for s in plan if (s.arity, s.start) not in out.files]
    return out


def remove_files(fs: pafs.FileSystem, root: str, findings: list[Finding], kinds: tuple[str, ...]) -> None:
    """Delete the files of the findings of these kinds (damaged shards, stray files)."""
    for f in findings:
        if f.kind in kinds and f.kind != "missing":
            remove_quietly(fs, f"{root}/{f.path}")


def _listing(fs: pafs.FileSystem, root: str) -> dict[str, int]:
    return {rel: size for rel, size in list_files(fs, root).items() if rel not in (MANIFEST, RECORD, LOCK)}


def _inspect(fs: pafs.FileSystem, root: str, shard: Shard, expected: Expected) -> ShardFile | tuple[str, str]:
    """An unrecorded planned file: its record if it reads back sound, else ``(kind, why)``."""
    path = f"{root}/{shard.relpath}"
    try:
        counts, header = read_footer(fs, path)
        rows = read_all_pages(fs, path)
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        return "unreadable", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if header is None:
        return "outdated", "format-1 shard without a lake header"
    if header.get("config_hash") != expected.config_hash:
        return "foreign", f"written for config {header.get('config_hash')}"
    if header.get("shard_rows") != expected.shard_rows[shard.arity]:
        return "foreign", f"written in shards of shard_rows={header.get('shard_rows')}"
    wanted = (shard.arity, shard.z1, shard.start, shard.stop - shard.start, rows)
    if (counts.arity, counts.z1, counts.shard, counts.tuples, counts.rows) != wanted:
        return "unreadable", "its footer does not match its place in the lake"
    info = fs.get_file_info(path)
    return ShardFile(counts, int(info.size or 0), file_sha256(fs, path))


def _parallel(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``[fn(item) ...]`` on threads (file reads and hashing release the GIL)."""
    if len(items) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1, len(items))) as pool:
        return list(pool.map(fn, items))
