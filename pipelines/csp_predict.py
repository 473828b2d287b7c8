"""Job entrypoint for `ray job submit`: train a CSP model (if missing) and predict structures.

    ray job submit --working-dir . -- python pipelines/csp_predict.py \
        --config pipelines/configs/csp_full.yaml --model-dir csp-model Zr4Al3 SrTiO3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from crystalspace.config import job_arguments, parse_sets
from crystalspace.csp.workflow import default_relaxer, load, load_csp_config, predict, train_pipeline
from crystalspace.errors import run_job
from crystalspace.runtime import init_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("formulas", nargs="+")
    job_arguments(parser, Path(__file__).parent / "configs" / "csp_small.yaml")
    parser.add_argument("--model-dir", type=Path, default=Path("csp-model"))
    parser.add_argument("--out", type=Path, default=Path("csp_out"))
    args = parser.parse_args()
    cfg = load_csp_config(args.config, parse_sets(args.sets))
    init_ray()
    if not (args.model_dir / "model.pt").exists():
        with tempfile.TemporaryDirectory() as tmp:
            info = train_pipeline(cfg, args.model_dir, Path(tmp))
        print(f"trained: distance {info['distance']}, lattice {info['lattice']}")
    bundle = load(args.model_dir)
    relaxer = default_relaxer(cfg.force_field)
    args.out.mkdir(parents=True, exist_ok=True)
    for f in args.formulas:
        res = predict(
            bundle, f, relaxer, cfg.top_k, cfg.ga_runs, cfg.ga, cfg.relax_steps, ga_actors=cfg.ga_actors
        )
        for i, c in enumerate(res["candidates"], 1):
            path = args.out / f"{f}_{i:02d}.cif"
            c["structure"].to(filename=str(path), fmt="cif")
            print(f"{f} rank {i}: {c['energy_per_atom']:.4f} eV/atom -> {path}")


if __name__ == "__main__":
    sys.exit(run_job(main))
