"""Job entrypoint for `ray job submit`: build the composition lake from a YAML config.

    ray job submit --working-dir . -- python pipelines/space_build.py \
        --config pipelines/configs/space_full.yaml --lake s3://bucket/crystalspace/lake
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crystalspace.config import make_space_config
from crystalspace.space.build import build_lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path(__file__).parent / "configs" / "space_small.yaml")
    parser.add_argument("--lake", default="lake")
    args = parser.parse_args()
    report = build_lake(make_space_config(args.config), args.lake)
    for arity, totals in sorted(report.totals.items()):
        print(f"arity {arity}: {totals}")
    print(f"{report.shards_built} shards built in {report.seconds:.1f} s; complete={report.complete}")


if __name__ == "__main__":
    main()
