"""Job entrypoint for `ray job submit`: train force fields from a YAML config, then evaluate them.

    ray job submit --working-dir . -- python pipelines/mlff_train.py \
        --config pipelines/configs/mlff_full.yaml --models schnet,dimenetpp,nequip
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crystalspace.config import job_arguments, parse_sets
from crystalspace.errors import run_job
from crystalspace.mlff.config import make_mlff_config
from crystalspace.mlff.evaluate import evaluate_models, format_table
from crystalspace.mlff.train import train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_arguments(parser, Path(__file__).parent / "configs" / "mlff_small.yaml")
    parser.add_argument("--models", default=None, help="comma-separated (default: the config's model)")
    parser.add_argument("--no-evaluate", action="store_true")
    args = parser.parse_args()
    base = make_mlff_config(args.config, parse_sets(args.sets))
    entries = []
    for name in (args.models or base.model).split(","):
        cfg = base.model_copy(update={"model": name})
        result = train_model(cfg)
        print(f"{name}: {result.entry} (val force MAE {result.metrics['val_force_mae']:.4f} eV/Å)")
        entries.append(result.entry)
    if not args.no_evaluate:
        out = Path(base.out) / "evaluation"
        table = evaluate_models(entries, base.data, list(base.test_materials), out, n_test=base.test_frames)
        print(format_table(table))


if __name__ == "__main__":
    sys.exit(run_job(main))
