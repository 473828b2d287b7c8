"""Build, verify and repair a lake from any :class:`ShardSource` (the composition space is one),
shard by shard, with Ray Data.

``ray.data.from_items(shards) -> map_batches(write_shards) -> iter_rows()``: every worker process
keeps its source in memory (cached), writes each shard file directly to the lake (local path or
object store) and returns the file's record (counts, size, SHA-256); the driver records finished
files, shows progress and keeps the manifest current.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from crystalspace.lake import manifest as mf
from crystalspace.lake.manifest import BuildLock
from crystalspace.lake.recovery import (
    arities_with_files,
    layout_of,
    open_manifest,
    read_record_or_rebuild,
    refuse_foreign_directory,
)
from crystalspace.lake.store import (
    FORMAT_VERSION,
    LakeError,
    Shard,
    ShardCounts,
    ShardFile,
    io_error,
    write_shard,
)
from crystalspace.lake.verify import REBUILD, STRAY, Expected, Finding, reconcile, remove_files
from crystalspace.runtime import check_ray_target, init_ray, progress, quiet_ray_data
from crystalspace.storage import find_os_error, is_remote, redact, resolve, scrub

log = logging.getLogger(__name__)
SAVE_EVERY_S = 1.0  # record and manifest follow finished shards at most this far behind
DEFAULT_SHARD_ROWS = 2_000_000  # the layout assumed for a format-1 lake, which recorded none


class ShardSource(Protocol):
    """What a lake is built from: its identity, its shard plan, and the shards themselves."""

    def header(self, shard_rows: int | None = None) -> dict[str, Any]:
        """The lake header (``format``, ``config``, ``config_hash``, …; with ``shard_rows``: one
        arity's layout too, as each shard's footer carries it)."""
        ...

    def plan(self, arity: int, shard_rows: int) -> list[Shard]:
        """The shards of ``arity`` at about ``shard_rows`` rows each."""
        ...

    def rows_mode(self, arity: int) -> str:
        """Which rows of ``arity`` are stored (``all`` or ``allowed``)."""
        ...

    def exact(self, arity: int) -> dict[str, int]:
        """Exact ``compositions``, ``allowed`` and ``known`` of ``arity`` (what ``verify`` checks)."""
        ...

    def build_shard(self, shard: Shard) -> tuple[pa.Table, ShardCounts]:
        """One shard's rows and counts."""
        ...

    def worker(self) -> tuple[str, Callable[[], ShardSource]]:
        """A key and a picklable factory that rebuilds this source in a Ray worker."""
        ...


#: Rebuilds the source of an existing lake from its manifest's ``config`` and its arities.
SourceOpener = Callable[[dict[str, Any], tuple[int, ...]], ShardSource]


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
    batch: dict[str, np.ndarray],
    source_key: str,
    source_factory: Callable[[], ShardSource],
    lake: str,
    headers: dict[int, dict[str, Any]],
) -> dict[str, np.ndarray]:
    """Ray Data batch function: build and write each shard of the batch, return the file records.

    A shard that fails (an object store refusing a write, a full disk) returns its error
    instead of raising, so one bad shard never takes the others down. The source (for a space:
    kernel tables, reference set) and the filesystem are loaded once per worker process."""
    if source_key not in _SOURCES:
        _SOURCES[source_key] = source_factory()
    space, (fs, root) = _SOURCES[source_key], _worker_fs(lake)
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


_SOURCES: dict[str, ShardSource] = {}


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


# -- entry points --------------------------------------------------------------------------------


def build(
    source: ShardSource,
    lake: str,
    arities: tuple[int, ...],
    shard_rows: int,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    max_shards: int | None = None,
) -> BuildReport:
    """Build (or resume) ``arities`` of ``lake`` from ``source`` in shards of ``shard_rows``.

    The lake's files are first checked against its record (sizes): missing or truncated files
    are rebuilt, unrecorded ones read back and adopted, and files of another shard layout or
    configuration refuse the run. ``max_shards`` stops after that many new shards (a partial
    build, resumable later). An I/O failure ends the build with one :class:`LakeError` line;
    only finished shard files are left visible.
    """
    check_ray_target(address, num_cpus)
    fs, root = resolve(lake)
    name = redact(lake)
    with _io_errors(lake):
        refuse_foreign_directory(fs, root, name)
        with BuildLock(fs, root, name, is_remote(lake)):
            manifest, findings = open_manifest(fs, root, name, source)
            mf.check_format(manifest, name)
            mf.check_identity(manifest, source.header()["config_hash"], name)
            held = arities_with_files(fs, root)
            for arity in arities:
                mf.check_layout(manifest, arity, shard_rows, name, arity in held)
            layout = layout_of(manifest) | dict.fromkeys(arities, shard_rows)
            run = _Run(source, lake, manifest, layout, findings, address, num_cpus)
            return run.go(list(arities), full=False, max_shards=max_shards)


def repair(
    lake: str, open_source: SourceOpener, *, address: str | None = None, num_cpus: int | None = None
) -> BuildReport:
    """Check every file of ``lake`` in full (SHA-256, page checksums), remove what is damaged or
    does not belong, rebuild it from the lake's own source, and rewrite the record and manifest.
    A format-1 lake is upgraded (its shards are rebuilt in the current format)."""
    check_ray_target(address, num_cpus)
    fs, root = resolve(lake)
    name = redact(lake)
    with _io_errors(lake), BuildLock(fs, root, name, is_remote(lake)):
        manifest, findings = open_manifest(fs, root, name, None)
        source, layout = _source_of(manifest, open_source, fs, root, name)
        run = _Run(source, lake, manifest, layout, findings, address, num_cpus)
        return run.go(sorted(layout), full=True, max_shards=None)


def verify(lake: str, open_source: SourceOpener) -> VerifyReport:
    """Check every file of ``lake`` against its record in full and every complete arity's totals
    against the exact counts of its source; change nothing."""
    fs, root = resolve(lake)
    name = redact(lake)
    with _io_errors(lake, "read"):
        manifest, findings = open_manifest(fs, root, name, None)
        source, layout = _source_of(manifest, open_source, fs, root, name)
        legacy = manifest.get("format") != FORMAT_VERSION
        record = read_record_or_rebuild(fs, root, name, findings)
        expected = Expected(manifest["config_hash"], _plans(source, layout), layout)
        checked = reconcile(fs, root, expected, record, full=True, legacy=legacy)
        arities = {}
        for arity, plan in expected.plans.items():
            mine = [f.counts for f in checked.files.values() if f.counts.arity == arity]
            totals = {k: sum(getattr(c, k) for c in mine) for k in ("compositions", "allowed", "known")}
            arities[arity] = {
                "shards_done": len(mine),
                "shards_total": len(plan),
                "complete": len(mine) == len(plan),
                "counts_match": totals == source.exact(arity),
                "totals": totals,
            }
    return VerifyReport(name, findings + checked.findings, arities)


# -- the shared run ------------------------------------------------------------------------------


@dataclass
class _Run:
    """One build or repair of an open (locked) lake."""

    source: ShardSource
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
        record = read_record_or_rebuild(fs, root, name, self.findings)
        expected = Expected(self.manifest["config_hash"], _plans(self.source, self.layout), self.layout)
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
            k: (rows, len(expected.plans[k]), self.source.rows_mode(k)) for k, rows in self.layout.items()
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
        key, factory = self.source.worker()
        write = functools.partial(
            write_shards,
            source_key=key,
            source_factory=factory,
            lake=self.lake,
            headers={k: self.source.header(rows) for k, rows in self.layout.items()},
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


def _plans(source: ShardSource, layout: dict[int, int]) -> dict[int, list[Shard]]:
    return {arity: source.plan(arity, rows) for arity, rows in layout.items()}


def _source_of(
    manifest: dict[str, Any], open_source: SourceOpener, fs: pafs.FileSystem, root: str, name: str
) -> tuple[ShardSource, dict[int, int]]:
    """The source a lake was built from (its manifest's configuration) and its shard layout."""
    arities = tuple(sorted({int(k) for k in manifest["arities"]} | arities_with_files(fs, root)))
    if not arities:
        raise LakeError(f"{name} holds no arity yet; run `crystalspace space build --lake {name}`")
    source = open_source(manifest["config"], arities)
    default_rows = DEFAULT_SHARD_ROWS
    layout = {k: manifest["arities"].get(str(k), {}).get("shard_rows") or default_rows for k in arities}
    if source.header()["config_hash"] != manifest["config_hash"]:
        raise LakeError(
            f"{name} was built with oxidation set {manifest.get('ox_set')} and reference "
            f"{manifest.get('reference')}; those files have changed since, so it cannot be checked"
        )
    return source, layout


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


__all__ = ["BuildReport", "ShardSource", "VerifyReport", "build", "repair", "verify"]
