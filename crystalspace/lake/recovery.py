"""Opening a lake for a build, repair or check: refuse a foreign directory, read the manifest (or
rebuild it from the shard footers), and read the shard record (or start it anew)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

from crystalspace.lake import manifest as mf
from crystalspace.lake.store import (
    LOCK,
    MANIFEST,
    RECORD,
    LakeError,
    ShardFile,
    parse_shard_relpath,
    read_footer,
)
from crystalspace.lake.verify import Finding
from crystalspace.storage import list_files

if TYPE_CHECKING:
    from crystalspace.lake.build import ShardSource


def refuse_foreign_directory(fs: pafs.FileSystem, root: str, name: str) -> None:
    """A non-empty directory (or a file) that is not a lake is never written to."""
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.File:
        raise LakeError(f"{name} is a file, not a lake; choose another --lake path")
    if info.type != pafs.FileType.Directory or fs.get_file_info(f"{root}/{MANIFEST}").is_file:
        return
    listing = [rel for rel in list_files(fs, root) if rel != LOCK]
    if listing and not any(parse_shard_relpath(rel) for rel in listing):
        raise LakeError(f"{name} exists and is not a crystalspace lake (no {MANIFEST}); choose an empty path")


def open_manifest(
    fs: pafs.FileSystem, root: str, name: str, source: ShardSource | None
) -> tuple[dict[str, Any], list[Finding]]:
    """The lake's manifest: read, or rebuilt from shard footers when missing or unreadable, or new
    (only with ``source``, for a build into an empty path)."""
    try:
        manifest = mf.read_manifest(fs, root, name)
        if manifest is not None:
            return manifest, []
        why = "missing"
    except LakeError:
        why = "unreadable"
    footers = footer_headers(fs, root)
    if not footers:
        if arities_with_files(fs, root):
            raise LakeError(
                f"{name} has shard files but no readable {MANIFEST}, and the files carry no lake "
                "header (format 1), so it cannot be recovered; build into a new --lake path"
            )
        if source is None:
            raise LakeError(f"no crystalspace lake at {name} (no {MANIFEST}); run `crystalspace space build`")
        return mf.new_manifest(source.header()), []
    header = next(iter(footers.values()))
    if source is not None:
        mf.check_identity(header, source.header()["config_hash"], name)
    manifest = mf.new_manifest({k: v for k, v in header.items() if k != "shard_rows"})
    for arity, h in footers.items():
        manifest["arities"][str(arity)] = {"shard_rows": h["shard_rows"], "shards_done": 0}
    note = f"the manifest was {why}: rebuilt from the shard files' footers"
    return manifest, [Finding("manifest", MANIFEST, note)]


def footer_headers(fs: pafs.FileSystem, root: str) -> dict[int, dict[str, Any]]:
    """One lake header per arity, read from the footer of the first readable shard file."""
    out: dict[int, dict[str, Any]] = {}
    for rel in sorted(list_files(fs, root)):
        parsed = parse_shard_relpath(rel)
        if parsed is None or parsed[0] in out:
            continue
        with contextlib.suppress(OSError, ValueError, LakeError):
            _, header = read_footer(fs, f"{root}/{rel}")
            if header is not None:
                out[parsed[0]] = header
    if len({h["config_hash"] for h in out.values()}) > 1:
        raise LakeError("shard files of several configurations share one lake; build into a new --lake path")
    return out


def read_record_or_rebuild(
    fs: pafs.FileSystem, root: str, name: str, findings: list[Finding]
) -> dict[tuple[int, int], ShardFile]:
    """The shard record; empty (so every file is read back and checked) when it is missing or
    unreadable."""
    try:
        record = mf.read_record(fs, root, name)
    except LakeError:
        findings.append(Finding("record", RECORD, "unreadable: rebuilt from the shard files"))
        return {}
    if record is None and arities_with_files(fs, root):
        findings.append(Finding("record", RECORD, "missing: rebuilt from the shard files"))
    return record or {}


def arities_with_files(fs: pafs.FileSystem, root: str) -> set[int]:
    return {p[0] for rel in list_files(fs, root) if (p := parse_shard_relpath(rel))}


def layout_of(manifest: dict[str, Any]) -> dict[int, int]:
    """Arity -> shard_rows of the arities the lake already holds (format-1 lakes recorded none)."""
    return {int(k): v["shard_rows"] for k, v in manifest["arities"].items() if v.get("shard_rows")}
