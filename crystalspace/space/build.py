"""Materialise a composition space into the lake, shard by shard, with Ray Data; verify and
repair a lake.

``ray.data.from_items(shards) -> map_batches(write_shards) -> iter_rows()``: every worker process
keeps its kernel tables and reference set in memory (cached), writes each shard file
directly to the lake (local path or object store) and returns the file's record (counts, size,
SHA-256); the driver records finished files, shows progress and keeps the manifest current.

Every run first reconciles the lake's files with its record (:mod:`crystalspace.lake.verify`):
sound files are skipped, damaged ones rebuilt, and a file of another layout or configuration
stops the run. So an interrupted or damaged build is finished by re-running it, and no setting
can make a lake hold a composition twice.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pyarrow.fs as pafs

from crystalspace.lake import manifest as mf
from crystalspace.lake.manifest import BuildLock
from crystalspace.lake.store import (
    FORMAT_VERSION,
    LOCK,
    MANIFEST,
    RECORD,
    LakeError,
    Shard,
    ShardCounts,
    ShardFile,
    io_error,
    parse_shard_relpath,
    read_footer,
    write_shard,
)
from crystalspace.lake.verify import REBUILD, STRAY, Expected, Finding, Reconciled, reconcile, remove_files
from crystalspace.runtime import check_ray_target, init_ray, progress, quiet_ray_data
from crystalspace.space.config import SpaceConfig
from crystalspace.space.engine import Space
from crystalspace.storage import find_os_error, is_remote, list_files, redact, resolve, scrub

log = logging.getLogger(__name__)
SAVE_EVERY_S = 1.0  # record and manifest follow finished shards at most this far behind


@dataclass
class BuildReport:
    """What a build (or repair) did: per-arity totals, shards built, and what it found and fixed."""

    lake: str  # the lake's name as shown to users (credentials removed)
    totals: dict[int, dict[str, int]]
    shards_built: int
    shards_skipped: int
    seconds: float
    complete: bool
    findings: list[Finding] = field(default_factory=list)


@dataclass
class VerifyReport:
    """What ``lake verify`` found: file findings, and each arity's totals against exact counts."""

    lake: str
    findings: list[Finding]
    arities: dict[int, dict[str, Any]]  # shards done/total, complete, counts_match

    @property
    def ok(self) -> bool:
        bad = [f for f in self.findings if f.kind != "adopted"]
        return not bad and all(a["complete"] and a["counts_match"] for a in self.arities.values())


def write_shards(
    batch: dict[str, np.ndarray], config_json: str, lake: str, headers: dict[int, dict[str, Any]]
) -> dict[str, np.ndarray]:
    """Ray Data batch function: build and write each shard of the batch, return the file records.

    A shard that fails (an object store refusing a write, a full disk) returns its error
    instead of raising, so one bad shard never takes the others down. The space (kernel tables,
    reference set) and the filesystem are loaded once per worker process."""
    space, (fs, root) = _worker_space(config_json), _worker_fs(lake)
    out: list[dict[str, Any]] = []
    for arity, z1, start, stop in zip(
        batch["arity"], batch["z1"], batch["start"], batch["stop"], strict=True
    ):
        shard = Shard(int(arity), int(z1), int(start), int(stop))
        try:
            table, counts = space.build_shard(shard)
            done = write_shard(fs, root, table, counts, headers[shard.arity])
            out.append({**_row(done), "error": ""})
        except Exception as exc:
            empty = dict.fromkeys(_ROW_KEYS, 0) | {"sha256": ""}
            out.append({**empty, "error": scrub(f"{shard.relpath}: {_one_line(exc)}")})
    return {key: np.array([r[key] for r in out]) for key in out[0]}


@functools.cache
def _worker_space(config_json: str) -> Space:
    return Space.load(SpaceConfig.model_validate_json(config_json))


@functools.cache
def _worker_fs(lake: str) -> tuple[pafs.FileSystem, str]:
    return resolve(lake)


_ROW_KEYS = [*(k.name for k in fields(ShardCounts)), "bytes", "sha256"]


def _row(f: ShardFile) -> dict[str, Any]:
    return {
        **{k.name: getattr(f.counts, k.name) for k in fields(ShardCounts)},
        "bytes": f.bytes,
        "sha256": f.sha256,
    }


def _from_row(row: dict[str, Any]) -> ShardFile:
    counts = ShardCounts(**{k.name: _plain(row[k.name]) for k in fields(ShardCounts)})
    return ShardFile(counts, int(row["bytes"]), str(row["sha256"]))


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def lake_header(space: Space, shard_rows: int | None = None) -> dict[str, Any]:
    """What identifies a lake's rows (and, with ``shard_rows``, one arity's layout: a footer's header)."""
    header = {
        "format": FORMAT_VERSION,
        "config": space.config.identity(),
        "config_hash": space.config.config_hash(space.ox.tag, space.known.tag),
        "ox_set": space.ox.tag,
        "ox_set_sha256": space.ox.sha256,
        "reference": space.known.tag,
        "reference_sha256": space.known.sha256,
    }
    return header if shard_rows is None else {**header, "shard_rows": shard_rows}


# -- entry points --------------------------------------------------------------------------------


def build_lake(
    config: SpaceConfig,
    lake: str,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    max_shards: int | None = None,
) -> BuildReport:
    """Build (or resume) the lake for every arity of ``config``.

    The lake's files are first checked against its record (sizes): missing or truncated files
    are rebuilt, unrecorded ones read back and adopted, and files of another shard layout or
    configuration refuse the run. ``max_shards`` stops after that many new shards (a partial
    build, resumable later). An I/O failure ends the build with one :class:`LakeError` line;
    only finished shard files are left visible.
    """
    check_ray_target(address, num_cpus)
    space = Space.load(config)
    fs, root = resolve(lake)
    name = redact(lake)
    with _io_errors(lake):
        _refuse_foreign_directory(fs, root, name)
        with BuildLock(fs, root, name, is_remote(lake)):
            manifest, findings = _open_manifest(fs, root, name, space)
            mf.check_format(manifest, name)
            mf.check_identity(manifest, lake_header(space)["config_hash"], name)
            held = _arities_with_files(fs, root)
            for arity in config.arities:
                mf.check_layout(manifest, arity, config.shard_rows, name, arity in held)
            layout = _layout(manifest) | dict.fromkeys(config.arities, config.shard_rows)
            run = _Run(space, lake, manifest, layout, findings, address, num_cpus)
            return run.go(list(config.arities), full=False, max_shards=max_shards)


def repair_lake(lake: str, *, address: str | None = None, num_cpus: int | None = None) -> BuildReport:
    """Check every file of ``lake`` in full (SHA-256, page checksums), remove what is damaged or
    does not belong, rebuild it, and rewrite the record and manifest. A format-1 lake is
    upgraded (its shards are rebuilt in the current format)."""
    check_ray_target(address, num_cpus)
    fs, root = resolve(lake)
    name = redact(lake)
    with _io_errors(lake), BuildLock(fs, root, name, is_remote(lake)):
        manifest, findings = _open_manifest(fs, root, name, None)
        space, layout = _space_of(manifest, fs, root, name)
        run = _Run(space, lake, manifest, layout, findings, address, num_cpus)
        return run.go(sorted(layout), full=True, max_shards=None)


def verify_lake(lake: str) -> VerifyReport:
    """Check every file of ``lake`` against its record in full and every complete arity's totals
    against the exact counts of its configuration; change nothing."""
    fs, root = resolve(lake)
    name = redact(lake)
    with _io_errors(lake, "read"):
        manifest, findings = _open_manifest(fs, root, name, None)
        space, layout = _space_of(manifest, fs, root, name)
        legacy = manifest.get("format") != FORMAT_VERSION
        record = _read_record_or_rebuild(fs, root, name, findings)
        expected = Expected(manifest["config_hash"], _plans(space, layout), layout)
        checked = reconcile(fs, root, expected, record, full=True, legacy=legacy)
        arities = {}
        for arity, plan in expected.plans.items():
            mine = [f.counts for f in checked.files.values() if f.counts.arity == arity]
            exact = space.count(arity)
            totals = {k: sum(getattr(c, k) for c in mine) for k in ("compositions", "allowed", "known")}
            arities[arity] = {
                "shards_done": len(mine),
                "shards_total": len(plan),
                "complete": len(mine) == len(plan),
                "counts_match": totals == {k: getattr(exact, k) for k in totals},
                "totals": totals,
            }
    return VerifyReport(name, findings + checked.findings, arities)


# -- the shared run ------------------------------------------------------------------------------


@dataclass
class _Run:
    """One build or repair of an open (locked) lake."""

    space: Space
    lake: str
    manifest: dict[str, Any]
    layout: dict[int, int]  # arity -> shard_rows, for every arity the lake holds or will hold
    findings: list[Finding]
    address: str | None
    num_cpus: int | None

    def go(self, build: list[int], *, full: bool, max_shards: int | None) -> BuildReport:
        """Reconcile the files (checksums too when ``full``), remove what is damaged (and, when
        ``full``, what does not belong), then build the missing shards of the ``build`` arities."""
        t0 = time.perf_counter()
        fs, root = resolve(self.lake)
        name = redact(self.lake)
        legacy = self.manifest.get("format") != FORMAT_VERSION
        record = _read_record_or_rebuild(fs, root, name, self.findings)
        expected = Expected(self.manifest["config_hash"], _plans(self.space, self.layout), self.layout)
        checked = reconcile(fs, root, expected, record, full=full, legacy=legacy)
        foreign = checked.of_kind("foreign")
        if foreign and not full:
            raise LakeError(
                f"{name} holds {len(foreign)} file(s) of another shard layout or configuration "
                f"(e.g. {foreign[0].path}: {foreign[0].detail}); {mf.repair_hint(name)} to remove them"
            )
        remove_files(fs, root, checked.findings, (*REBUILD, *STRAY))
        self.manifest["format"] = FORMAT_VERSION
        self.files = checked.files
        self.meta = {
            k: (rows, len(expected.plans[k]), self.space.config.rows_for(k))
            for k, rows in self.layout.items()
        }
        self.save()
        todo = [s for s in checked.todo if s.arity in build]
        skipped = sum(len(expected.plans[k]) for k in build) - len(todo)
        if max_shards is not None:
            todo = todo[:max_shards]
        failures = self.write(todo) if todo else []
        complete = self.save()
        if failures:
            raise LakeError(
                f"cannot write the lake at {name}: {len(failures)} shard(s) failed ({failures[0]}); "
                f"stopped with {len(self.files)} shards recorded: re-run to complete the lake"
            )
        totals = {int(k): v["totals"] for k, v in self.manifest["arities"].items()}
        seconds = time.perf_counter() - t0
        return BuildReport(
            name, totals, len(todo), skipped, seconds, complete, self.findings + checked.findings
        )

    def save(self) -> bool:
        fs, root = resolve(self.lake)
        return mf.save(fs, root, self.manifest, self.meta, self.files)

    def write(self, todo: list[Shard]) -> list[str]:
        """Build ``todo`` as Ray Data tasks, recording each finished file and saving the record
        at most every SAVE_EVERY_S; the failed shards' messages."""
        import ray

        init_ray(self.address, self.num_cpus)
        quiet_ray_data()
        items = [{"arity": s.arity, "z1": s.z1, "start": s.start, "stop": s.stop} for s in todo]
        # Tasks, not an actor pool: Ray Data passes actor constructor arguments through the object
        # store, which Ray reports as an error line (ray-project/ray#53727) on every build.
        write = functools.partial(
            write_shards,
            config_json=self.space.config.model_dump_json(),
            lake=self.lake,
            headers={k: lake_header(self.space, rows) for k, rows in self.layout.items()},
        )
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            write, batch_size=1, num_cpus=1
        )
        failures: list[str] = []
        last_save = time.perf_counter()
        with progress(len(todo), f"building {redact(self.lake)}", unit="compositions") as bar:
            for row in ds.iter_rows():
                if row["error"]:
                    failures.append(str(row["error"]))
                    if len(failures) > max(2, (len(self.files)) // 10):
                        break  # a store or disk that refuses every write: stop, keep what is done
                    continue
                f = _from_row(row)
                self.files[f.key] = f
                bar.advance(f.counts.compositions)  # throughput in compositions filtered
                if time.perf_counter() - last_save > SAVE_EVERY_S:
                    self.save()
                    last_save = time.perf_counter()
        return failures


# -- opening a lake ------------------------------------------------------------------------------


def _refuse_foreign_directory(fs: pafs.FileSystem, root: str, name: str) -> None:
    """A non-empty directory (or a file) that is not a lake is never written to."""
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.File:
        raise LakeError(f"{name} is a file, not a lake; choose another --lake path")
    if info.type != pafs.FileType.Directory or fs.get_file_info(f"{root}/{MANIFEST}").is_file:
        return
    listing = [rel for rel in list_files(fs, root) if rel != LOCK]
    if listing and not any(parse_shard_relpath(rel) for rel in listing):
        raise LakeError(f"{name} exists and is not a crystalspace lake (no {MANIFEST}); choose an empty path")


def _open_manifest(
    fs: pafs.FileSystem, root: str, name: str, space: Space | None
) -> tuple[dict[str, Any], list[Finding]]:
    """The lake's manifest: read, or rebuilt from shard footers when missing or unreadable, or new
    (only with ``space``, for a build into an empty path)."""
    try:
        manifest = mf.read_manifest(fs, root, name)
        if manifest is not None:
            return manifest, []
        why = "missing"
    except LakeError:
        why = "unreadable"
    footers = _footer_headers(fs, root)
    if not footers:
        if _arities_with_files(fs, root):
            raise LakeError(
                f"{name} has shard files but no readable {MANIFEST}, and the files carry no lake "
                "header (format 1), so it cannot be recovered; build into a new --lake path"
            )
        if space is None:
            raise LakeError(f"no crystalspace lake at {name} (no {MANIFEST}); run `crystalspace space build`")
        return mf.new_manifest(lake_header(space)), []
    header = next(iter(footers.values()))
    if space is not None:
        mf.check_identity(header, lake_header(space)["config_hash"], name)
    manifest = mf.new_manifest({k: v for k, v in header.items() if k != "shard_rows"})
    for arity, h in footers.items():
        manifest["arities"][str(arity)] = {"shard_rows": h["shard_rows"], "shards_done": 0}
    note = f"the manifest was {why}: rebuilt from the shard files' footers"
    return manifest, [Finding("manifest", MANIFEST, note)]


def _footer_headers(fs: pafs.FileSystem, root: str) -> dict[int, dict[str, Any]]:
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


def _read_record_or_rebuild(
    fs: pafs.FileSystem, root: str, name: str, findings: list[Finding]
) -> dict[tuple[int, int], ShardFile]:
    """The shard record; empty (so every file is read back and checked) when it is missing or
    unreadable."""
    try:
        record = mf.read_record(fs, root, name)
    except LakeError:
        findings.append(Finding("record", RECORD, "unreadable: rebuilt from the shard files"))
        return {}
    if record is None and _arities_with_files(fs, root):
        findings.append(Finding("record", RECORD, "missing: rebuilt from the shard files"))
    return record or {}


def _arities_with_files(fs: pafs.FileSystem, root: str) -> set[int]:
    return {p[0] for rel in list_files(fs, root) if (p := parse_shard_relpath(rel))}


def _layout(manifest: dict[str, Any]) -> dict[int, int]:
    """Arity -> shard_rows of the arities the lake already holds (format-1 lakes recorded none)."""
    return {int(k): v["shard_rows"] for k, v in manifest["arities"].items() if v.get("shard_rows")}


def _plans(space: Space, layout: dict[int, int]) -> dict[int, list[Shard]]:
    return {arity: space.shards(arity, rows) for arity, rows in layout.items()}


def _space_of(
    manifest: dict[str, Any], fs: pafs.FileSystem, root: str, name: str
) -> tuple[Space, dict[int, int]]:
    """The space a lake was built from (its manifest's configuration) and its shard layout."""
    arities = sorted({int(k) for k in manifest["arities"]} | _arities_with_files(fs, root))
    if not arities:
        raise LakeError(f"{name} holds no arity yet; run `crystalspace space build --lake {name}`")
    default_rows = SpaceConfig().shard_rows
    layout = {k: manifest["arities"].get(str(k), {}).get("shard_rows") or default_rows for k in arities}
    config = SpaceConfig(**{**manifest["config"], "arities": tuple(arities)})
    space = Space.load(config)
    if lake_header(space)["config_hash"] != manifest["config_hash"]:
        raise LakeError(
            f"{name} was built with oxidation set {manifest.get('ox_set')} and reference "
            f"{manifest.get('reference')}; those files have changed since, so it cannot be checked"
        )
    return space, layout


@contextlib.contextmanager
def _io_errors(lake: str, action: str = "write") -> Iterator[None]:
    """An I/O failure on the lake (permission, disk full, a refusing store) as one LakeError line."""
    try:
        yield
    except LakeError:
        raise
    except Exception as exc:
        err = find_os_error(exc)
        if err is None:
            raise
        raise io_error(lake, err, action) from None


__all__ = ["REBUILD", "BuildReport", "Reconciled", "VerifyReport", "build_lake", "repair_lake", "verify_lake"]
