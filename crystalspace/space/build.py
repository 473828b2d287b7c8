"""Materialise a composition space into the lake, shard by shard, with Ray Data.

``ray.data.range(shard ids) -> map_batches(ShardWriter) -> iter_rows()``: every worker keeps
the shard plan, its kernel tables and reference set in memory (a callable class), writes its shard file
directly to the lake (local path or object store) and returns the shard's counts; the driver
only collects counts, shows progress and keeps the manifest current. Re-running a build skips
the shard files that exist, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow.fs as pafs

from crystalspace import __version__
from crystalspace.config import SpaceConfig
from crystalspace.lake.store import (
    CATEGORIES,
    FORMAT_VERSION,
    MANIFEST,
    LakeError,
    ShardCounts,
    find_os_error,
    finished_shards,
    io_error,
    now_iso,
    read_counts,
    read_footer_counts,
    read_manifest,
    resolve,
    write_atomic,
    write_counts,
    write_shard,
)
from crystalspace.runtime import init_ray, progress, quiet_ray_data
from crystalspace.space.engine import Shard, Space

log = logging.getLogger(__name__)
MANIFEST_EVERY_S = 30.0


class ShardWriter:
    """Ray Data callable class: builds and writes the shards of a batch, returns their counts."""

    def __init__(self, config_json: str, lake: str, plan: np.ndarray) -> None:
        self.space = Space.load(SpaceConfig.model_validate_json(config_json))
        self.fs, self.root = resolve(lake)
        self.plan = plan  # (shards, 4): arity, z1, start, stop; row i is shard id i

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: list[ShardCounts] = []
        for shard_id in batch["id"]:
            arity, z1, start, stop = (int(v) for v in self.plan[shard_id])
            table, counts = self.space.build_shard(Shard(arity, z1, start, stop))
            write_shard(self.fs, self.root, table, counts)
            out.append(counts)
        return {f.name: np.array([getattr(c, f.name) for c in out]) for f in fields(ShardCounts)}


@dataclass
class BuildReport:
    """What a build did: per-arity totals and how much was (re)computed."""

    lake: str
    totals: dict[int, dict[str, int]]
    shards_built: int
    shards_skipped: int
    seconds: float
    complete: bool


def open_lake(space: Space, lake: str) -> dict[str, Any]:
    """Manifest of ``lake`` for this config: create it, or check the existing one matches."""
    fs, root = resolve(lake)
    config_hash = space.config.config_hash(space.ox.tag, space.known.tag)
    manifest = read_manifest(fs, root)
    if manifest is None:
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.File or (
            info.type == pafs.FileType.Directory and fs.get_file_info(pafs.FileSelector(root))
        ):
            raise LakeError(
                f"{lake} exists and is not a crystalspace lake (no {MANIFEST}); choose an empty path"
            )
        manifest = {
            "format": FORMAT_VERSION,
            "config": space.config.identity(),
            "config_hash": config_hash,
            "ox_set": space.ox.tag,
            "ox_set_sha256": space.ox.sha256,
            "reference": space.known.tag,
            "reference_sha256": space.known.sha256,
            "created": now_iso(),
            "arities": {},
        }
    elif manifest.get("config_hash") != config_hash:
        raise LakeError(
            f"{lake} holds another configuration's data (config hash {manifest.get('config_hash')}, "
            f"this run {config_hash}); use a new --lake path"
        )
    return manifest


def build_lake(
    config: SpaceConfig,
    lake: str,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    max_shards: int | None = None,
) -> BuildReport:
    """Build (or resume) the lake for every arity of ``config``.

    ``max_shards`` stops after that many new shards (a partial build, resumable later). An I/O
    failure on the lake (permission denied, disk full, an object store that refuses) ends the
    build with one :class:`LakeError` line; only finished shard files are left visible.
    """
    try:
        return _build_lake(config, lake, address=address, num_cpus=num_cpus, max_shards=max_shards)
    except LakeError:
        raise
    except Exception as exc:  # an OSError raised here or inside a Ray worker
        err = find_os_error(exc)
        if err is None:
            raise
        raise io_error(lake, err) from None


def _build_lake(
    config: SpaceConfig,
    lake: str,
    *,
    address: str | None,
    num_cpus: int | None,
    max_shards: int | None,
) -> BuildReport:
    t0 = time.perf_counter()
    space = Space.load(config)
    fs, root = resolve(lake)
    manifest = open_lake(space, lake)
    counts = {(c.arity, c.shard): c for c in read_counts(fs, root)}
    todo: list[Shard] = []
    plans: dict[int, list[Shard]] = {}
    for arity in config.arities:
        plans[arity] = space.shards(arity)
        done = finished_shards(fs, root, arity)
        counts = {key: c for key, c in counts.items() if key[0] != arity or key[1] in done}
        for shard_id, path in done.items():
            if (arity, shard_id) not in counts:
                counts[(arity, shard_id)] = read_footer_counts(fs, path)
        todo += [s for s in plans[arity] if s.start not in done]
    skipped = sum(len(p) for p in plans.values()) - len(todo)
    if max_shards is not None:
        todo = todo[:max_shards]
    _save(fs, root, manifest, plans, counts, config)
    if todo:
        init_ray(address, num_cpus)
        quiet_ray_data()
        import ray

        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        plan = np.array([[s.arity, s.z1, s.start, s.stop] for s in todo], dtype=np.int64)
        # Materialise the (tiny) id range first: its read tasks would otherwise queue behind the
        # writer actors that hold every CPU, and the build would deadlock on small clusters.
        ids = ray.data.range(len(todo), override_num_blocks=len(todo)).materialize()
        ds = ids.map_batches(
            ShardWriter,
            fn_constructor_kwargs={"config_json": config.model_dump_json(), "lake": lake, "plan": plan},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(todo))),
            num_cpus=1,
        )
        last_save = time.perf_counter()
        with progress(len(todo), f"building {lake}", unit="compositions") as bar:
            for row in ds.iter_rows():
                c = ShardCounts(**{f.name: _plain(row[f.name]) for f in fields(ShardCounts)})
                counts[(c.arity, c.shard)] = c
                bar.advance(c.compositions)  # throughput in compositions filtered
                if time.perf_counter() - last_save > MANIFEST_EVERY_S:
                    _save(fs, root, manifest, plans, counts, config)
                    last_save = time.perf_counter()
    complete = _save(fs, root, manifest, plans, counts, config)
    totals = {int(k): v["totals"] for k, v in manifest["arities"].items()}
    return BuildReport(lake, totals, len(todo), skipped, time.perf_counter() - t0, complete)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _save(
    fs: Any,
    root: str,
    manifest: dict[str, Any],
    plans: dict[int, list[Shard]],
    counts: dict[tuple[int, int], ShardCounts],
    config: SpaceConfig,
) -> bool:
    """Write ``_counts.parquet`` and ``_manifest.json``; True when every planned shard is done."""
    write_counts(fs, root, sorted(counts.values(), key=lambda c: (c.arity, c.shard)))
    complete = True
    for arity, plan in plans.items():
        mine = [c for c in counts.values() if c.arity == arity]
        keys = ["tuples", "compositions", "allowed", "known", *CATEGORIES, "rows"]
        totals = {key: sum(getattr(c, key) for c in mine) for key in keys}
        partitions: dict[int, dict[str, int]] = {}
        for c in mine:
            part = partitions.setdefault(c.z1, {"files": 0, "rows": 0, "compositions": 0, "allowed": 0})
            part["files"] += 1
            part["rows"] += c.rows
            part["compositions"] += c.compositions
            part["allowed"] += c.allowed
        manifest["arities"][str(arity)] = {
            "rows": config.rows_for(arity),
            "shards_total": len(plan),
            "shards_done": len(mine),
            "complete": len(mine) == len(plan),
            "totals": totals,
            "partitions": {str(z1): p for z1, p in sorted(partitions.items())},
        }
        complete &= len(mine) == len(plan)
    manifest["code_version"] = __version__
    manifest["updated"] = now_iso()
    write_atomic(fs, f"{root}/{MANIFEST}", json.dumps(manifest, indent=1).encode())
    return complete
