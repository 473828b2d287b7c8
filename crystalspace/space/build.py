"""The composition space as a lake's :class:`~crystalspace.lake.build.ShardSource`, and the lake
entry points of the space: build, repair and verify (the lake does the rest)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from crystalspace.lake import build as lake_build
from crystalspace.lake.build import BuildReport, ShardSource, VerifyReport
from crystalspace.lake.store import FORMAT_VERSION, Shard, ShardCounts
from crystalspace.space.config import SpaceConfig
from crystalspace.space.engine import Space


class SpaceSource:
    """A :class:`Space` as the source of its lake."""

    def __init__(self, space: Space) -> None:
        self.space = space

    def header(self, shard_rows: int | None = None) -> dict[str, Any]:
        space = self.space
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

    def plan(self, arity: int, shard_rows: int) -> list[Shard]:
        return self.space.shards(arity, shard_rows)

    def rows_mode(self, arity: int) -> str:
        return self.space.config.rows_for(arity)

    def exact(self, arity: int) -> dict[str, int]:
        c = self.space.count(arity)
        return {"compositions": c.compositions, "allowed": c.allowed, "known": c.known}

    def build_shard(self, shard: Shard) -> tuple[pa.Table, ShardCounts]:
        return self.space.build_shard(shard)

    def worker(self) -> tuple[str, Callable[[], ShardSource]]:
        config_json = self.space.config.model_dump_json()
        return config_json, functools.partial(_source_from_json, config_json)


def _source_from_json(config_json: str) -> SpaceSource:
    return SpaceSource(Space.load(SpaceConfig.model_validate_json(config_json)))


def open_source(config: dict[str, Any], arities: tuple[int, ...]) -> SpaceSource:
    """The source of an existing lake: its manifest's configuration, with its arities."""
    return SpaceSource(Space.load(SpaceConfig(**{**config, "arities": arities})))


def lake_header(space: Space, shard_rows: int | None = None) -> dict[str, Any]:
    """What identifies a lake's rows (and, with ``shard_rows``, one arity's layout)."""
    return SpaceSource(space).header(shard_rows)


def build_lake(
    config: SpaceConfig,
    lake: str,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    max_shards: int | None = None,
) -> BuildReport:
    """Build (or resume) the lake for every arity of ``config`` (see :func:`crystalspace.lake.build.build`)."""
    source = SpaceSource(Space.load(config))
    return lake_build.build(source, lake, config.arities, config.shard_rows,
                            address=address, num_cpus=num_cpus, max_shards=max_shards)  # fmt: skip


def repair_lake(lake: str, *, address: str | None = None, num_cpus: int | None = None) -> BuildReport:
    """Check every file of ``lake`` in full, remove what is damaged or does not belong, rebuild it
    (see :func:`crystalspace.lake.build.repair`)."""
    return lake_build.repair(lake, open_source, address=address, num_cpus=num_cpus)


def verify_lake(lake: str) -> VerifyReport:
    """Check every file of ``lake`` and its exact counts; change nothing (see
    :func:`crystalspace.lake.build.verify`)."""
    return lake_build.verify(lake, open_source)


__all__ = ["BuildReport", "SpaceSource", "VerifyReport", "build_lake", "repair_lake", "verify_lake"]
