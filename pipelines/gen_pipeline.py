"""Job entrypoint for `ray job submit`: the iMatGen pipeline (data → train → sample → evaluate).

    ray job submit --working-dir . -- python pipelines/gen_pipeline.py \
        --config pipelines/configs/gen_full.yaml --steps build-data,train,evaluate
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from crystalspace.config import job_arguments, parse_sets
from crystalspace.errors import run_job
from crystalspace.gen import workflow
from crystalspace.gen.config import make_gen_config
from crystalspace.runtime import init_ray

STEPS = ("build-data", "train", "sample", "evaluate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_arguments(parser, Path(__file__).parent / "configs" / "gen_small.yaml")
    parser.add_argument(
        "--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}"
    )
    parser.add_argument("--address", default=None, help="Ray cluster address [embedded or $RAY_ADDRESS]")
    args = parser.parse_args()
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    bad = sorted(set(steps) - set(STEPS))
    if bad:
        parser.error(f"unknown steps {bad}; choose from {list(STEPS)}")
    cfg = make_gen_config(args.config, parse_sets(args.sets))
    init_ray(args.address)
    for step in steps:
        if step == "build-data":
            result = workflow.build_data(cfg)
        elif step == "train":
            result = workflow.train(cfg)
        elif step == "sample":
            result = workflow.sample(cfg)
        else:
            result = {
                "report": str(Path(cfg.out_dir) / "report.md"),
                **{k: v for k, v in workflow.evaluate(cfg).items() if k in ("table2",)},
            }
        print(f"{step}: {json.dumps(result, default=str)}")


if __name__ == "__main__":
    sys.exit(run_job(main))
