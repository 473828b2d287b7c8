"""Which materials-VAE settings bring iMatGen's Table 1 towards the study's: VAE-only retrains
(`train.autoencoders_from`) on one set of trained image autoencoders, each scored on the same
train and test rows, next to the autoencoders alone.

GPU (the base model's training dominates; each variant then takes a minute or two):
    python benchmarks/bench_gen_vae_sweep.py --config pipelines/configs/gen_full.yaml \\
        --set data_dir=$OUT/gen/data --set model_dir=$OUT/gen/model --out $OUT/vae \\
        --variants '[{"cell_weight": 10}, {"vae_latent": 128, "cell_weight": 10}]'
It builds the VO dataset and trains the base model (``model_dir``) first when they are missing,
writes ``vae_sweep.md`` after every variant, and names the variant with the most fully
reconstructed test rows in ``best.txt``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=None, help="gen YAML config")
    p.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    p.add_argument("--variants", default="[{}]", help="JSON list of train-setting overrides, one per VAE")
    p.add_argument("--rows", type=int, default=500, help="rows scored per split")
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("vae_sweep"))
    return p.parse_args()


def _name(variant: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in variant.items()) or "base settings"


def main() -> None:
    from crystalspace.config import parse_sets
    from crystalspace.gen import workflow
    from crystalspace.gen.config import make_gen_config
    from crystalspace.gen.evaluate import dataset_structures
    from crystalspace.gen.generator import Generator
    from crystalspace.gen.train import train_generator
    from crystalspace.runtime import init_ray

    a = _args()
    a.out.mkdir(parents=True, exist_ok=True)
    cfg = make_gen_config(a.config, dict(parse_sets(a.set)))
    init_ray(num_cpus=a.num_cpus)
    t0 = time.perf_counter()
    if not (Path(cfg.data_dir) / "labelled.parquet").exists():
        print("dataset:", json.dumps(workflow.build_data(cfg)), flush=True)
    if not (Path(cfg.model_dir) / "config.json").exists():
        print("base model:", json.dumps(workflow.train(cfg)), flush=True)
    print(f"data and base model ready after {time.perf_counter() - t0:.0f} s", flush=True)
    _, structures = dataset_structures(cfg.data_dir)
    base = workflow.train_settings(cfg)
    lines = [workflow.TABLE1_HEADER.replace("| set |", "| VAE (split) |", 1)]

    def score(label: str, gen: Generator, seconds: float | None = None) -> int:
        t = workflow.table1(gen, structures, a.rows, cfg.seed, intrinsic=False, autoencoders=seconds is None)
        for split, row in t.items():
            lines.append(workflow.table1_row(f"{label} ({split})", row))
        if seconds is not None:
            lines.append(f"| {label}: VAE training {seconds:.0f} s | | | | | | | | | | |")
        (a.out / "vae_sweep.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines[-4:]), flush=True)
        return int(t["test"]["fully_reconstructed"])

    best = (score("base model", Generator(cfg.model_dir)), cfg.model_dir)
    for i, variant in enumerate(json.loads(a.variants)):
        folder = str(a.out / f"vae{i}")
        t = time.perf_counter()
        train_generator(cfg.data_dir, folder, replace(base, autoencoders_from=cfg.model_dir, **variant))
        full = score(_name(variant), Generator(folder), time.perf_counter() - t)
        best = max(best, (full, folder))
    (a.out / "best.txt").write_text(best[1] + "\n")
    print(
        f"best: {best[1]} ({best[0]} fully reconstructed test rows); {time.perf_counter() - t0:.0f} s in all"
    )


if __name__ == "__main__":
    main()
