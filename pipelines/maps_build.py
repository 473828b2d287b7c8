"""Job entrypoint for `ray job submit`: build the maps, figures and explorer from a YAML config.

    ray job submit --working-dir . -- python pipelines/maps_build.py \
        --config pipelines/configs/maps_small.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crystalspace.config import job_arguments, parse_sets
from crystalspace.errors import run_job
from crystalspace.maps.build import build_maps
from crystalspace.maps.config import make_maps_config
from crystalspace.maps.embeddings import parse_embeddings
from crystalspace.maps.explorer import write_explorer
from crystalspace.maps.figures import make_figures
from crystalspace.maps.reduce import parse_methods
from crystalspace.maps.separation import to_markdown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_arguments(parser, Path(__file__).parent / "configs" / "maps_small.yaml")
    parser.add_argument("--lake", action="append", default=None, help="overrides the config's lakes")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    cfg = make_maps_config(args.config, {**parse_sets(args.sets), "lakes": args.lake, "out": args.out})
    report = build_maps(
        cfg.lakes,
        cfg.out,
        arities=cfg.arities,
        embeddings=parse_embeddings(",".join(cfg.embeddings)),
        methods=parse_methods(",".join(cfg.methods)),
        per_category=cfg.per_category,
        seed=cfg.seed,
    )
    for note in report.notes:
        print(note)
    print(to_markdown(report.separation))
    if cfg.figures:
        for path in make_figures(cfg.out):
            print(path)
    if cfg.explorer:
        print(write_explorer(cfg.out))
    print(f"maps in {cfg.out}, {report.seconds['total']:.0f} s")


if __name__ == "__main__":
    sys.exit(run_job(main))
