"""Job entrypoint for `ray job submit`: build the composition lake from a YAML config.

    ray job submit --working-dir . -- python pipelines/space_build.py \
        --config pipelines/configs/space_full.yaml --lake s3://bucket/crystalspace/lake

A re-submitted job resumes: finished shards are skipped (they are files in the lake).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crystalspace.config import job_arguments, parse_sets
from crystalspace.errors import UserError
from crystalspace.space.build import build_lake
from crystalspace.space.config import make_space_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_arguments(parser, Path(__file__).parent / "configs" / "space_small.yaml")
    parser.add_argument("--lake", default="lake")
    args = parser.parse_args(argv)
    try:
        report = build_lake(make_space_config(args.config, parse_sets(args.sets)), args.lake)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for arity, totals in sorted(report.totals.items()):
        print(f"arity {arity}: {totals}")
    print(
        f"{report.shards_built} shards built, {report.shards_skipped} already done, "
        f"in {report.seconds:.1f} s; complete={report.complete}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
