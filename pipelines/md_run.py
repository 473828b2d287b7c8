"""Job entrypoint for `ray job submit`: batched MD replicas (Ray actors) from a YAML config.

    ray job submit --working-dir . -- python pipelines/md_run.py --config pipelines/configs/md_full.yaml

Actors write trajectories and checkpoints under ``out`` (a path every node can reach on a
cluster); a re-submitted job resumes every replica from its checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from crystalspace.config import apply_overrides, job_arguments, parse_sets, read_config_file, relative_to_file
from crystalspace.errors import UserError


def run(config: dict[str, Any], base: Path) -> list[dict[str, Any]]:
    """Run the replicas a config describes; structure paths are relative to ``base`` (the config's
    folder: every path in a config file is relative to the file)."""
    from crystalspace.atoms.io import read_structures
    from crystalspace.md.actors import run_md
    from crystalspace.md.replicas import MDProtocol
    from crystalspace.runtime import init_ray

    try:
        structures = {
            name: read_structures(str(base / path), index=0)[0]
            for name, path in dict(config["structures"]).items()
        }
        protocol = MDProtocol(**config.get("protocol", {}))
        temperatures = [float(t) for t in config["temperatures"]]
    except KeyError as exc:
        raise UserError(f"md config: missing key {exc}") from None
    init_ray()
    return run_md(
        structures,
        temperatures,
        int(config.get("repeats", 1)),
        config.get("out", "runs/md"),
        protocol,
        config.get("provider", "pair"),
        actors_per_material=int(config.get("actors_per_material", 2)),
        num_gpus=float(config.get("gpus_per_actor", 0.0)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_arguments(parser, Path(__file__).parent / "configs" / "md_small.yaml")
    parser.add_argument("--out", default=None, help="trajectory directory [the config's out]")
    args = parser.parse_args(argv)
    try:
        config = apply_overrides(relative_to_file(read_config_file(args.config), ("out",), args.config),
                                 parse_sets(args.sets))  # fmt: skip
        if args.out:
            config["out"] = args.out
        summary = run(config, args.config.resolve().parent)
    except (OSError, UserError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    stopped = [r for r in summary if r["status"] != "ok"]
    print(f"{len(summary)} replicas, {len(stopped)} stopped; trajectories in {config.get('out')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
